"""`pz2 eval generation`: answers of a model on a test file, scored against the references."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pz2.data.loading import reference_pairs
from pz2.evaluation.text_metrics import chrf, rouge_l
from pz2.fileio import atomic_write_json, atomic_write_jsonl, atomic_write_text, sha256_file
from pz2.runtime.engine import Engine


@dataclass(frozen=True)
class GenerationEvaluation:
    metrics: dict[str, Any]
    files: dict[str, Path]


def evaluate_generation(engine: Engine, adapter: str | None, data: Path, out_dir: Path, system_prompt: str,
                        limit: int | None = None, max_new_tokens: int = 128, label: str = "model") -> GenerationEvaluation:
    """Score the greedy answers of `engine` with `adapter` (the served decoder, its no-repeat rule included)
    with ROUGE-L and chrF; write metrics.json, predictions.jsonl and report.md."""
    pairs = reference_pairs(data, system_prompt, limit)
    start = time.perf_counter()
    answers = [engine.stream(u, adapter, max_new_tokens, history=h, system=s).text for s, u, _, h in pairs]
    seconds = time.perf_counter() - start
    scores = [(rouge_l(a, ref), chrf(a, ref)) for a, (_, _, ref, _) in zip(answers, pairs, strict=True)]
    n = max(1, len(scores))
    metrics = {"model": label, "data": str(data), "data_sha256": sha256_file(data), "rows": len(pairs),
               "rouge_l": sum(s[0] for s in scores) / n, "chrf": sum(s[1] for s in scores) / n,
               "max_new_tokens": max_new_tokens, "engine": engine.name, "seconds": round(seconds, 1)}
    files = {name: out_dir / name for name in ("metrics.json", "predictions.jsonl", "report.md")}
    atomic_write_json(files["metrics.json"], metrics)
    atomic_write_jsonl(files["predictions.jsonl"], (
        {"input_text": u, "reference": ref, "prediction": a, "rouge_l": r, "chrf": c}
        for (_, u, ref, _), a, (r, c) in zip(pairs, answers, scores, strict=True)))
    worst = sorted(zip(scores, pairs, answers, strict=True), key=lambda x: x[0][0])[:10]
    atomic_write_text(files["report.md"], "\n".join([
        f"# Generation evaluation: {label} on `{data.name}`", "",
        f"{len(pairs)} rows, greedy decoding by the {engine.name} engine as pz2 serves it, at most {max_new_tokens} "
        "new tokens.", "",
        "| metric | value |", "|---|---|", f"| ROUGE-L (F1) | {metrics['rouge_l']:.4f} |", f"| chrF | {metrics['chrf']:.4f} |", "",
        "## Lowest ROUGE-L", "", "| question | answer | ROUGE-L |", "|---|---|---|",
        *[f"| {u[:80]} | {a[:120].replace(chr(10), ' ')} | {s[0]:.3f} |" for s, (_, u, _, _), a in worst],
    ]) + "\n")
    return GenerationEvaluation(metrics, files)
