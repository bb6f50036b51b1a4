"""Which passages a specialist may answer from (`Retriever.sources`), measured on questions with known answers.

For each question the index's first hit is a positive when it holds the answer (the question's own document
for `pz2 eval kb`'s 48 questions; the answer's words for the others) and a negative otherwise. A rule keeps a
hit or drops it; the table counts positives and negatives kept under the old rule (similarity floor 0.35
only) and under floors with the word check (`runtime.retrieval.min_similarity`, `sure_similarity`).
The rule is chosen on the authors' 170 held-out questions (where users ask) with `pz2 eval kb`'s own
questions kept at 95 %; the 100 general-knowledge questions are reported, never chosen on.

    python benchmarks/source_rule.py --workspace finetuning     # after `pz2 kb build`; ~1 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "source_rule.json"
RULES = [(0.35, 0.35), (0.40, 0.40), (0.45, 0.45), (0.50, 0.50),
         (0.35, 0.55), (0.40, 0.50), (0.40, 0.55), (0.40, 0.60), (0.45, 0.55), (0.40, 1.01)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=Path("finetuning"))
    args = parser.parse_args()
    from pz2.evaluation.eval_set import HELD_OUT, load_file
    from pz2.evaluation.grounded import GENERAL_QUESTIONS, GROUNDED_QUESTIONS, GroundedRow, load_grounded
    from pz2.knowledge.retrieval import Retriever
    from pz2.workspace import Workspace

    ws = Workspace(args.workspace)
    cfg = ws.model_config()
    retriever = Retriever.load(ws.knowledge, cfg)
    sets = {"held-out (chosen on)": [GroundedRow(e.question, e.references, e.category or "qna", "")
                                     for p in HELD_OUT for e in load_file(p)],
            "eval kb (kept >= 95 %)": load_grounded(GROUNDED_QUESTIONS),
            "general (reported)": load_grounded(GENERAL_QUESTIONS)}
    firsts = {name: [(row, retriever.search(row.question).hits[0]) for row in rows] for name, rows in sets.items()}
    results: dict = {"passages": len(retriever.index), "rules": {}}
    print(f"{len(retriever.index)} passages; first hit kept: positives / negatives")
    print(f"{'min':>5} {'sure':>5}  " + "  ".join(f"{name:>24}" for name in sets))
    for low, sure in RULES:
        retriever.cfg = cfg.runtime.retrieval.model_copy(update={"min_similarity": low, "sure_similarity": sure})
        row_out = {}
        for name, pairs in firsts.items():
            kept = [(row.found_in(hit), bool(retriever.sources(row.question, [hit]))) for row, hit in pairs]
            pos = sum(1 for p, _ in kept if p)
            row_out[name] = {"positives": pos, "positives_kept": sum(1 for p, k in kept if p and k),
                             "negatives": len(kept) - pos, "negatives_kept": sum(1 for p, k in kept if not p and k)}
        results["rules"][f"{low:.2f}/{sure:.2f}"] = row_out
        print(f"{low:5.2f} {sure:5.2f}  " + "  ".join(
            f"{r['positives_kept']:>3}/{r['positives']:<3} {r['negatives_kept']:>4}/{r['negatives']:<4}".rjust(24)
            for r in row_out.values()))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
