"""Evaluate a model (seed step 4).

    python finetuning/scripts/model_evaluation.py --model_path models/unified_model --model_type generation
    python finetuning/scripts/model_evaluation.py --model_path models/qna_specialist --model_type generation \\
        --data datasets/processed_english/dialogue_qna_test.jsonl
    python finetuning/scripts/model_evaluation.py --model_path models/unified_model/classifier --model_type classification
    python finetuning/scripts/model_evaluation.py --model_type compare --limit 10

Paths may be relative to the workspace (finetuning/), as in the seed. `generation` runs
`pz2 eval generation`, `classification` runs `pz2 eval classifier` (default data: the test split),
`compare` runs `pz2 eval compare` (hybrid vs separated vs unified; `--model_path` is then the folder
holding unified_model/ and the specialists, default models/).
"""

import argparse
import sys
from pathlib import Path

from _pz2 import WORKSPACE, run


def _resolve(path: str) -> str:
    p = Path(path)
    return str(p if p.exists() or p.is_absolute() else WORKSPACE / p)


parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--model_path", help="the model folder (compare: the models folder)")
parser.add_argument("--model_type", required=True, choices=["generation", "classification", "compare"])
parser.add_argument("--data")
args, rest = parser.parse_known_args()
if args.model_path is None and args.model_type != "compare":
    parser.error(f"--model_path is required for --model_type {args.model_type}")
data = ["--data", _resolve(args.data)] if args.data else []
if args.model_type == "classification" and not data:
    data = ["--data", str(WORKSPACE / "datasets" / "processed_english" / "classification_test.jsonl")]
sys.argv = [sys.argv[0], *rest]
command = {"generation": "generation", "classification": "classifier", "compare": "compare"}[args.model_type]
model = ["--models" if command == "compare" else "--model", _resolve(args.model_path)] if args.model_path else []
raise SystemExit(run("eval", command, *model, *data))
