"""Peak memory (RSS high-water mark) of the assistant: unified model alone, then with both specialists.

Each configuration runs in a fresh child process, so one's peak does not hide another's. Baseline:
the assistant (classifier, llama.cpp engine, the unified model merged into the base) after one unified answer.
Compared with: the same process after both specialists answered, once as LoRA adapters (pz2's
way) and once as full copies of the model (what "three separate models" costs).

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
from pz2.models.unified import served_unified
from pz2.runtime.assistant import Assistant
from pz2.workspace import Workspace

def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

ws = Workspace(Path("finetuning"))
assistant = Assistant.from_config(ws, ws.model_config())
assistant_cfg = Workspace(Path("finetuning")).model_config()
if sys.argv[1] == "full":  # the same assistant, its specialists full copies of the model instead of adapters
    gguf = served_unified(assistant_cfg, Path("finetuning/models/unified_model/adapter")).gguf
    assistant.pool.paths = {name: gguf for name in assistant.pool.paths}
    assistant.pool.budget = float("inf")
out = {}
assistant.ask("I feel sad today")
out["unified_mb"] = peak_mb()
assistant.ask("What is DNS?", expert=True)
assistant.ask("How do I trim lines in AutoCAD?", expert=True)
out["with_specialists_mb"] = peak_mb()
assistant.close()
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
    adapters, full = child("adapters"), child("full")
    r = {"unified_mb": adapters["unified_mb"], "with_adapter_specialists_mb": adapters["with_specialists_mb"],
         "with_full_model_specialists_mb": full["with_specialists_mb"]}
    r["adapters_over_unified"] = r["with_adapter_specialists_mb"] / r["unified_mb"]
    r["full_models_over_unified"] = r["with_full_model_specialists_mb"] / r["unified_mb"]
    # the process's fixed part (Python, torch, the classifier) weighs on both ratios: the added MB say more
    r["adapters_added_mb"] = r["with_adapter_specialists_mb"] - r["unified_mb"]
    r["full_models_added_mb"] = r["with_full_model_specialists_mb"] - full["unified_mb"]
    for key, value in r.items():
        print(f"{key:28s} {value:9.2f}")
    atomic_write_json(args.out, r)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
