"""What a specialist costs to bring in: switch to a loaded adapter, load one cold, load a full model.

Baseline, in the same process: loading a full copy of the model as llama.cpp serves it (a second
`Llama` on the unified model's GGUF), and, for the reference engine, a full transformers model.
Adapters: the trained specialists in finetuning/models/, on the served unified model (run `pz2 demo` first).

    python benchmarks/adapter_switch.py [--repeats 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from pz2.fileio import atomic_write_json
from pz2.models.unified import served_unified
from pz2.runtime.engine import build_engine
from pz2.workspace import Workspace

SPECIALISTS = {"qna": Path("finetuning/models/qna_specialist"), "technical": Path("finetuning/models/technical_specialist")}


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/adapter_switch.json"))
    args = parser.parse_args()
    missing = [str(p) for p in SPECIALISTS.values() if not p.exists()]
    if missing:
        print(f"train the specialists first (pz2 demo): missing {missing}", file=sys.stderr)
        return 1
    ws = Workspace(Path("finetuning"))
    cfg = ws.model_config({"runtime.engine.backend": "llamacpp", "runtime.engine.threads": 2})
    served = served_unified(cfg, ws.unified_model / "adapter")
    engine = build_engine(cfg, ws.unified_model / "adapter")
    for name, path in SPECIALISTS.items():
        engine.lora_gguf(path)  # converted once beforehand: conversion is not part of a load
        engine.load(name, path)

    def switch() -> None:   # what the decoder does between two adapters' calls (it is idle meanwhile)
        engine.decoder._use(engine.adapters["qna"])
        engine.decoder._use(engine.adapters["technical"])

    r: dict[str, float] = {}
    r["llamacpp_switch_ms"] = median_ms(switch, args.repeats * 50) / 2

    def cold_load() -> None:
        engine.unload("qna")
        engine.load("qna", SPECIALISTS["qna"])

    r["llamacpp_cold_adapter_load_ms"] = median_ms(cold_load, args.repeats)
    r["llamacpp_full_model_load_ms"] = median_ms(
        lambda: engine._open(served.gguf).close(), max(3, args.repeats // 4))
    r["llamacpp_full_over_adapter"] = r["llamacpp_full_model_load_ms"] / r["llamacpp_cold_adapter_load_ms"]

    import torch
    from transformers import AutoModelForCausalLM

    reference = build_engine(ws.model_config({"runtime.engine.backend": "transformers"}), ws.unified_model / "adapter")
    reference.load("qna", SPECIALISTS["qna"])

    def peft_cold() -> None:
        reference.unload("technical")
        reference.load("technical", SPECIALISTS["technical"])

    reference.load("technical", SPECIALISTS["technical"])
    r["transformers_cold_adapter_load_ms"] = median_ms(peft_cold, max(3, args.repeats // 2))
    r["transformers_switch_ms"] = median_ms(lambda: reference.model.set_adapter("qna") or reference.model.set_adapter("technical"),
                                            args.repeats * 10) / 2
    r["transformers_full_model_load_ms"] = median_ms(
        lambda: AutoModelForCausalLM.from_pretrained(served.path, dtype=torch.float32), 3)
    r["transformers_full_over_adapter"] = r["transformers_full_model_load_ms"] / r["transformers_cold_adapter_load_ms"]
    for key, value in r.items():
        print(f"{key:38s} {value:10.3f}")
    atomic_write_json(args.out, r)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
