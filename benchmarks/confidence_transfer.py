"""Does the router's confidence hold on questions people write? (issue 22's targets: ECE <= 0.10, AUC >= 0.75
on at least 150 held-out human-written questions with short answers).

The unified model answers every row through the assistant, as the router sees it (the answer checked
against the knowledge base); the router's confidence and the generation-only model fitted beside it
(`confidence_generation_only.json`) each give P(good), and "good" is the confidence's own definition
(the fact contained for a short reference, else SemScore). Reported per group of rows, on the rows the
router could escalate (classifier: qna or technical): ECE with its 95 % bootstrap interval, AUC.
The rows: the authors' 170 held-out short-answer questions, chatterbot-corpus's test split (qna,
technical) and the generated unified test split. Cheaper than `pz2 eval compare` (only the unified
model answers). Needs `pz2 demo` (or trained models, `pz2 kb build`, `pz2 train confidence`).

    python benchmarks/confidence_transfer.py [--workspace finetuning] [--limit 200]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pz2.config import EvaluationConfig
from pz2.evaluation import answer_quality as aq
from pz2.evaluation.architectures import run_architecture
from pz2.evaluation.compare import confidence_calibration, confidences
from pz2.evaluation.eval_set import HELD_OUT, load_eval_rows
from pz2.fileio import atomic_write_json
from pz2.models.sentence import SentenceEncoder
from pz2.runtime.assistant import Assistant
from pz2.workspace import Workspace


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", type=Path, default=Path("finetuning"))
    parser.add_argument("--limit", type=int, default=200, help="rows per file and category")
    args = parser.parse_args()
    ws = Workspace(args.workspace)
    cfg = ws.model_config()
    groups = {"held-out (authors)": list(HELD_OUT),
              "chatterbot test": sorted(ws.real_datasets.glob("dialogue_[qt]*_test.jsonl")),
              "generated test": [ws.datasets / "unified_test.jsonl"]}
    assistant = Assistant.from_config(ws, cfg, log=False)
    encoder = SentenceEncoder.load(cfg)
    if assistant.confidence is None:
        print("no confidence model: `pz2 train confidence` first", file=sys.stderr)
        return 2
    results = {}
    try:
        for name, files in groups.items():
            rows = load_eval_rows(files, args.limit, EvaluationConfig().seed)
            predictions = assistant.classifier.predict([r.question for r in rows])
            runs = {"unified": run_architecture("unified", assistant, rows, predictions)}
            scores = aq.score_answers(encoder, [a.text for a in runs["unified"].answers], [r.references for r in rows],
                                      assistant.confidence.good["short_answer_words"])
            labels = [p.label for p in predictions]
            calibration = confidence_calibration(confidences(ws, runs), scores, labels, ["all"] * len(rows),
                                                 assistant.confidence.good)
            results[name] = {"rows": len(rows), "by_confidence": {k: v["all"] for k, v in calibration["by_confidence"].items()}}
            for model, m in results[name]["by_confidence"].items():
                lo, hi = m["ece_ci95"]
                auc = "n/a" if m["auc"] is None else f"{m['auc']:.3f}"
                print(f"{name:20s} {model:16s} {m['rows']:4d} escalatable answers, {m['good_rate']:.0%} good: "
                      f"ECE {m['ece']:.3f} ({lo:.3f}-{hi:.3f}), AUC {auc}")
    finally:
        assistant.close()
    atomic_write_json(Path("benchmarks/results/confidence_transfer.json"), results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
