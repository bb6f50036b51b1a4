"""Single-query latency and batch throughput of a trained classifier, after warm-up.

Baseline, in the same process on the same model: a plain transformers text-classification
`pipeline`. pz2 adds calibration, input notes and the English-coverage check on top.

    python benchmarks/classifier_latency.py [--model finetuning/models/unified_model/classifier]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from pz2.data.real import CHALLENGE_FILE
from pz2.fileio import atomic_write_json
from pz2.data.jsonl import read_jsonl
from pz2.runtime.classifier import ConversationClassifier


def _timed(fn, items) -> list[float]:
    out = []
    for item in items:
        start = time.perf_counter()
        fn(item)
        out.append(time.perf_counter() - start)
    return out


def _summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {"p50_ms": 1000 * statistics.median(ordered), "p95_ms": 1000 * ordered[int(0.95 * (len(ordered) - 1))]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("finetuning/models/unified_model/classifier"))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    from transformers import pipeline

    texts = [r["text"] for r in read_jsonl(CHALLENGE_FILE)]
    clf = ConversationClassifier.load(args.model)
    if clf.meta["method"] != "finetune":
        print("the pipeline baseline needs a `finetune` classifier", file=sys.stderr)
        return 2
    baseline = pipeline("text-classification", model=str(args.model), tokenizer=str(args.model), device="cpu")

    for _ in range(20):  # warm-up: allocator, thread pool, lazy kernels
        clf.predict([texts[0]])
        baseline(texts[0])
    single = {"pz2": _summary(_timed(lambda t: clf.predict([t]), texts * args.rounds)),
              "pipeline": _summary(_timed(baseline, texts * args.rounds))}
    batch_texts = texts * 8
    start = time.perf_counter()
    clf.predict(batch_texts, batch_size=64)
    pz2_tps = len(batch_texts) / (time.perf_counter() - start)
    start = time.perf_counter()
    baseline(batch_texts, batch_size=64)
    base_tps = len(batch_texts) / (time.perf_counter() - start)

    results = {"single": single, "batch_texts_per_s": {"pz2": pz2_tps, "pipeline": base_tps},
               "ratios": {"single_p50_pipeline_over_pz2": single["pipeline"]["p50_ms"] / single["pz2"]["p50_ms"],
                          "batch_pz2_over_pipeline": pz2_tps / base_tps},
               "threads": torch.get_num_threads(), "queries": len(texts) * args.rounds}
    print(f"single query  p50 {single['pz2']['p50_ms']:.2f} ms  p95 {single['pz2']['p95_ms']:.2f} ms   "
          f"(pipeline p50 {single['pipeline']['p50_ms']:.2f} ms)")
    print(f"batch (64)    {pz2_tps:.0f} texts/s   (pipeline {base_tps:.0f} texts/s)")
    print(f"ratios        {results['ratios']}")
    atomic_write_json(Path("benchmarks/results/classifier_latency.json"), results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
