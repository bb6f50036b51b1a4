"""Fine-tune a specialist (seed step 3): a LoRA adapter over the same base.

    python finetuning/scripts/train_specialist.py --type qna
    python finetuning/scripts/train_specialist.py --type technical --profile quick

Same as `pz2 train specialist`; `--type daily_chat` is refused: the unified model handles chat.
"""

from _pz2 import run

raise SystemExit(run("train", "specialist"))
