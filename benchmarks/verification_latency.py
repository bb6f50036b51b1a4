"""What checking the unified answer against the knowledge base adds to a turn (issue 22: <= 30 ms p50).

The check (runtime/verification.py) encodes the question and the answer in one pass of MiniLM, searches
the index (FAISS + BM25, fused) and compares the answer with the closest passage. Its baseline, measured in
the same process on the same questions: the plain search a grounded specialist turn already makes. The
questions are the generated validation rows, each with its reference standing in for the unified answer
(an answer of the length the unified model writes). Needs a built knowledge base (`pz2 kb build`, or
`pz2 demo`) in the workspace.

    python benchmarks/verification_latency.py [--workspace finetuning] [--rows 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from pz2.data.loading import reference_pairs
from pz2.fileio import atomic_write_json
from pz2.knowledge.retrieval import Retriever
from pz2.runtime.verification import check
from pz2.workspace import Workspace


def _summary(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    return {"p50_ms": statistics.median(ordered), "p95_ms": ordered[int(0.95 * (len(ordered) - 1))]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", type=Path, default=Path("finetuning"))
    parser.add_argument("--rows", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)   # as in the assistant: torch shares the cores with llama.cpp
    ws = Workspace(args.workspace)
    cfg = ws.model_config()
    retriever = Retriever.load(ws.knowledge, cfg)
    pairs = reference_pairs(ws.datasets / "unified_validation.jsonl", cfg.system_prompt, args.rows)
    for _, question, answer, _ in pairs[:10]:   # warm-up: lazy kernels, allocator
        check(retriever, question, answer, "qna")
    checked, searched = [], []
    for _, question, answer, _ in pairs:
        start = time.perf_counter()
        retriever.search(question)
        searched.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        check(retriever, question, answer, "qna")
        checked.append((time.perf_counter() - start) * 1000)
    results = {"check": _summary(checked), "search": _summary(searched), "rows": len(pairs),
               "passages": len(retriever.index), "threads": torch.get_num_threads(),
               "ratio_check_over_search_p50": statistics.median(checked) / statistics.median(searched)}
    print(f"check   p50 {results['check']['p50_ms']:.1f} ms  p95 {results['check']['p95_ms']:.1f} ms")
    print(f"search  p50 {results['search']['p50_ms']:.1f} ms  p95 {results['search']['p95_ms']:.1f} ms  "
          f"({results['passages']} passages, {len(pairs)} questions)")
    print(f"check / search (p50): {results['ratio_check_over_search_p50']:.2f}")
    atomic_write_json(Path("benchmarks/results/verification_latency.json"), results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
