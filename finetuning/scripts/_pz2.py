"""Run a pz2 command with this scripts folder's workspace, so the seed's commands work from anywhere."""

import sys
from pathlib import Path

WORKSPACE = Path(__file__).resolve().parents[1]


def run(*command: str) -> int:
    try:
        from pz2.cli import main
    except ImportError:
        print("pz2 is not installed in this Python: run `make setup`, then `source .venv/bin/activate`", file=sys.stderr)
        return 1
    return main(["--workspace", str(WORKSPACE), *command, *sys.argv[1:]])
