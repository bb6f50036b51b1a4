"""Print pip constraints that pin every direct dependency of pz2 to the lowest release pyproject.toml
declares (`>=X` -> `==X`; an `==` pin stays). `make test` installs pz2 with them in a second
environment and runs the tests that cover training and both engines there, so each declared lower
bound is one the tests ran on (the role of uv's `--resolution lowest-direct`, with plain pip)."""

import re
import sys
import tomllib
from pathlib import Path

project = tomllib.loads(Path(sys.argv[1] if len(sys.argv) > 1 else "pyproject.toml").read_text())["project"]
requirements = [*project["dependencies"], *project["optional-dependencies"]["test"]]
for requirement in requirements:
    name, spec = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", requirement).groups()
    pinned = re.search(r"==\s*([^,\s]+)", spec) or re.search(r">=\s*([^,\s]+)", spec)
    if pinned is None:
        sys.exit(f"{requirement}: no lower bound; declare the lowest release it is tested on")
    print(f"{name}=={pinned.group(1)}")
