"""The hybrid AI assistant (seed step 4: `python main.py`).

The unified model answers; specialists load when a question needs them. In the chat:
/expert, /status, /ft (fine-tuning menu: status, generate, validate, train, evaluate), /quit.
Options are those of `pz2 chat` (`python main.py --help`).
"""

import sys
from pathlib import Path

WORKSPACE = Path(__file__).resolve().parent / "finetuning"

try:
    from pz2.cli import main
except ImportError:
    print("pz2 is not installed in this Python: run `make setup`, then `source .venv/bin/activate`", file=sys.stderr)
    raise SystemExit(1) from None

raise SystemExit(main(["--workspace", str(WORKSPACE), "chat", *sys.argv[1:]]))
