"""Talk to the unified model and its specialists (seed: "통합형 모델 추론").

    python finetuning/scripts/unified_inference.py --mode interactive
    python finetuning/scripts/unified_inference.py --mode single --text "How to draw a line in CAD software?"
    python finetuning/scripts/unified_inference.py --mode batch --input questions.jsonl --output answers.jsonl

Same as `pz2 chat`; batch mode writes each answer with its routing record.
"""

from _pz2 import run

raise SystemExit(run("chat"))
