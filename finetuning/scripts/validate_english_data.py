"""Validate the English datasets (seed step 1, recommended).

    python finetuning/scripts/validate_english_data.py
    python finetuning/scripts/validate_english_data.py --lang ko --json

Same as `pz2 data validate`: exit 0 clean, 1 errors, 2 usage; `--help` lists every option.
"""

from _pz2 import run

raise SystemExit(run("data", "validate"))
