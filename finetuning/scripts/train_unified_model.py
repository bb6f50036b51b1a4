"""Fine-tune the unified model (seed step 2): a LoRA adapter over the embedded base.

    python finetuning/scripts/train_unified_model.py
    python finetuning/scripts/train_unified_model.py --profile quick
    python finetuning/scripts/train_unified_model.py --resume          # after a crash or Ctrl-C

Same as `pz2 train unified`; `--help` lists every option.
"""

from _pz2 import run

raise SystemExit(run("train", "unified"))
