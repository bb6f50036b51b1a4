"""One answer with a second busy process beside it, against the same answer alone (issue 25, item 4).

The answer is the embedded base's 64-token greedy answer on the llamacpp engine. Each case times three
answers alone, starts a neighbour, waits for it to be busy, and times three answers again: the ratio of
the two sums. Neighbours: another pz2 engine answering without pause (with the automatic thread count,
and with every core as before), and a LoRA training step loop in torch (what `pz2 train` does). This
process's engine runs with `runtime.engine.threads` 0 (the default: the free cores, counted before each
answer) and with every core (the old default), so both rows of each neighbour come from one run.

    python benchmarks/cpu_share.py        # ~2 min on 2 cores, nothing else running
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "cpu_share.json"
QUESTION = "What is a Python dictionary? Explain with an example."
TOKENS = 64
WARM_S = 10   # the neighbour loads its model and starts


def engine(threads: int):  # noqa: ANN201
    from pz2.config import ModelConfig
    from pz2.runtime.engine import build_engine

    e = build_engine(ModelConfig.model_validate({"runtime": {"engine": {"threads": threads}}}))
    e.generate(QUESTION, None, 8)
    return e


def answer_s(e) -> float:  # noqa: ANN001
    start = time.perf_counter()
    e.generate(QUESTION, None, TOKENS)
    return time.perf_counter() - start


def busy_engine(threads: int) -> None:
    e = engine(threads)
    while True:
        e.generate(QUESTION, None, TOKENS)


def busy_training() -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from pz2.config import ModelConfig
    from pz2.models.prepare import prepare_base

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(prepare_base(ModelConfig()).path),
                           LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))
    ids = torch.randint(0, 40000, (8, 256))
    while True:
        model(input_ids=ids, labels=ids).loss.backward()


NEIGHBOURS = {"pz2 engine, automatic threads": ["engine", "0"], "pz2 engine, every core (the old default)":
              ["engine", str(os.cpu_count())], "LoRA training (torch)": ["training"]}


def main() -> None:
    threads_of = {"automatic (default)": 0, "every core (old default)": os.cpu_count() or 1}
    engines = {name: engine(t) for name, t in threads_of.items()}
    rows = []
    for neighbour, args in NEIGHBOURS.items():
        alone = {name: [answer_s(e) for _ in range(3)] for name, e in engines.items()}
        child = subprocess.Popen([sys.executable, __file__, *args])
        try:
            time.sleep(WARM_S)
            beside = {name: [answer_s(e) for _ in range(3)] for name, e in engines.items()}
        finally:
            child.kill()
            child.wait()
        for name in engines:
            ratio = sum(beside[name]) / sum(alone[name])
            rows.append({"threads": name, "neighbour": neighbour, "alone_s": alone[name], "beside_s": beside[name],
                         "slowdown": ratio})
            print(f"{name:26} beside {neighbour:42} alone {sum(alone[name]) / 3:.2f} s, beside "
                  f"{sum(beside[name]) / 3:.2f} s: x{ratio:.1f}", flush=True)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(rows, indent=2))
    print(f"-> {RESULTS}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["engine"]:
        busy_engine(int(sys.argv[2]))
    elif sys.argv[1:2] == ["training"]:
        busy_training()
    else:
        main()
