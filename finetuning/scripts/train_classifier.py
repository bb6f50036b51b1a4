"""Fine-tune the conversation-type classifier (대화 유형 분류기).

    python finetuning/scripts/train_classifier.py
    python finetuning/scripts/train_classifier.py --method setfit

Same as `pz2 train classifier`; `--help` lists every option.
"""

from _pz2 import run

raise SystemExit(run("train", "classifier"))
