"""Answer quality of the fine-tuned models against the untuned base, on held-out topics.

1. unified_test.jsonl: the untuned base against the unified adapter;
2. dialogue_<type>_test.jsonl (detailed reference answers): the unified adapter against the
   type's specialist, for qna and technical.
Greedy decoding; ROUGE-L F1 and chrF against the references. Needs trained adapters
(`pz2 demo`, or `pz2 train unified` and `pz2 train specialist --type qna|technical`).

    python benchmarks/sft_quality.py [--limit 40] [--max-new-tokens 160]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pz2.evaluation.generation_report import evaluate_generation
from pz2.fileio import atomic_write_json
from pz2.runtime.engine import engine_answering_as
from pz2.workspace import Workspace


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", type=Path, default=Path("finetuning"))
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--max-new-tokens", type=int, default=160)
    args = parser.parse_args()
    ws = Workspace(args.workspace)
    model_cfg = ws.model_config()
    models = {"base": None, "unified": ws.models / "unified_model",
              "qna": ws.models / "qna_specialist", "technical": ws.models / "technical_specialist"}
    plan = [("unified_test", "base"), ("unified_test", "unified"),
            ("dialogue_qna_test", "unified"), ("dialogue_qna_test", "qna"),
            ("dialogue_technical_test", "unified"), ("dialogue_technical_test", "technical")]
    results: dict[str, dict[str, dict]] = {}
    loaded: dict[str, tuple] = {}
    for data_name, model_name in plan:
        if model_name not in loaded:
            loaded[model_name] = engine_answering_as(model_cfg, models[model_name], ws.unified_model / "adapter")
        engine, adapter = loaded[model_name]
        out = Path("benchmarks/results/sft_quality") / data_name / model_name
        m = evaluate_generation(engine, adapter, ws.datasets / f"{data_name}.jsonl", out, model_cfg.system_prompt,
                                args.limit, args.max_new_tokens, label=model_name).metrics
        results.setdefault(data_name, {})[model_name] = {"rouge_l": m["rouge_l"], "chrf": m["chrf"], "rows": m["rows"]}
        print(f"{data_name:26s} {model_name:10s} ROUGE-L {m['rouge_l']:.4f}  chrF {m['chrf']:.4f}  "
              f"({m['rows']} rows, {m['seconds']:.0f} s)", flush=True)
    atomic_write_json(Path("benchmarks/results/sft_quality.json"), results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
