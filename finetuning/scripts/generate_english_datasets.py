"""Generate the English datasets (seed step 1).

    python finetuning/scripts/generate_english_datasets.py
    python finetuning/scripts/generate_english_datasets.py --seed 7 --per-category 500 --include-real

Same as `pz2 data generate`; `--help` lists every option.
"""

from _pz2 import run

raise SystemExit(run("data", "generate"))
