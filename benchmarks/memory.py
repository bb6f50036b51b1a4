"""Peak memory (RSS high-water mark) of the assistant: unified model alone, then with both specialists.

Each configuration runs in a fresh child process, so one's peak does not hide another's. Baseline:
the unified model alone (base + unified adapter, llama.cpp). Compared with: the same process after
both specialist adapters are loaded and used, and three full copies of the model (what "three
separate models" costs).

    python benchmarks/memory.py
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from pz2.fileio import atomic_write_json

CHILD = r"""
import json, sys
from pathlib import Path
from pz2.config import ModelConfig
from pz2.models.embedded import BASE
from pz2.runtime.engine_llamacpp import LlamaCppEngine, tokenizer_for

def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

cfg = ModelConfig()
tok = tokenizer_for(cfg)
mode = sys.argv[1]
out = {}
engine = LlamaCppEngine(BASE.path(), tok, cfg.system_prompt, 48, threads=2, cache_dir=cfg.cache_dir)
if mode == "hybrid":
    engine.load("unified", Path("finetuning/models/unified_model/adapter"))
    engine.generate("How to draw a line in CAD software?", "unified")
    out["unified_mb"] = peak_mb()
    for name in ("qna", "technical"):
        engine.load(name, Path(f"finetuning/models/{name}_specialist"))
        engine.generate("How to draw a line in CAD software?", name)
    out["with_specialists_mb"] = peak_mb()
else:
    engines = [engine] + [LlamaCppEngine(BASE.path(), tok, cfg.system_prompt, 48, threads=2) for _ in range(2)]
    for e in engines:
        e.generate("How to draw a line in CAD software?", None)
    out["three_full_models_mb"] = peak_mb()
print(json.dumps(out))
"""


def child(mode: str) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/memory.json"))
    args = parser.parse_args()
    for path in ("finetuning/models/unified_model/adapter", "finetuning/models/qna_specialist",
                 "finetuning/models/technical_specialist"):
        if not Path(path).exists():
            print(f"train the models first (pz2 demo): {path} is missing", file=sys.stderr)
            return 1
    r = child("hybrid") | child("full")
    r["specialists_over_unified"] = r["with_specialists_mb"] / r["unified_mb"]
    r["three_full_over_unified"] = r["three_full_models_mb"] / r["unified_mb"]
    # the process's fixed part (Python, torch, tokenizer) weighs on both ratios: the added MB say more
    r["specialists_added_mb"] = r["with_specialists_mb"] - r["unified_mb"]
    r["two_full_models_added_mb"] = r["three_full_models_mb"] - r["unified_mb"]
    for key, value in r.items():
        print(f"{key:28s} {value:9.2f}")
    atomic_write_json(args.out, r)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
