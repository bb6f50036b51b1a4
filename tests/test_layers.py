"""Imports run down the layers of DESIGN.md §5, never up, and the router loads without torch.

Every `import` in src/pz2 counts, the ones inside functions too: a lazy import is still a
dependency. A module may import a lower layer, or its own package within its layer; two packages
of one layer (runtime and training) stay apart. DESIGN.md's groups are refined into the order
their members already stand on each other (models read data's labels; serving and the
evaluation runners stand on the runtime; the evaluation package's pure metrics sit below the
knowledge base), so no two packages can import each other.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "pz2"
PURE_METRICS = ["pz2.evaluation.metrics", "pz2.evaluation.text_metrics", "pz2.evaluation.plots",
                "pz2.evaluation.answer_quality", "pz2.evaluation.model_loss"]
LAYERS: list[list[str]] = [          # lowest first; DESIGN.md §5's groups, in the order they stand on each other
    ["pz2.errors"],
    ["pz2.fileio"],
    ["pz2.config"],
    ["pz2.workspace"],                # the configured layout of the seed's folders
    ["pz2.data"],
    ["pz2.models"],                   # reads the datasets' labels, never the other way
    PURE_METRICS,                     # measure models' outputs
    ["pz2.knowledge"],
    ["pz2.runtime", "pz2.training"],  # apart: training never loads the assistant
    ["pz2.serving", "pz2.evaluation", "pz2.status", "pz2.export"],  # stand on the runtime
    ["pz2.views"],                    # tables for the terminal
    ["pz2.demo"],
    ["pz2.cli"],
    ["pz2.__main__", "pz2"],
]


def _place(module: str) -> tuple[int, str]:
    """(layer, unit) of a module: the longest name of LAYERS it falls under."""
    best = max((name for layer in LAYERS for name in layer if module == name or module.startswith(name + ".")),
               key=len, default=None)
    assert best is not None, f"{module} is in no layer of DESIGN.md §5: add it to LAYERS"
    return next(i for i, layer in enumerate(LAYERS) if best in layer), best


def _package(unit: str) -> str:
    return ".".join(unit.split(".")[:2])


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(source: str) -> list[tuple[int, str]]:
    """(line, module) of every pz2 module `source` imports; `from pz2.x import y` names pz2.x.y when y is a module."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "pz2"]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"line {node.lineno}: relative import; pz2 imports absolutely"
            if (node.module or "").split(".")[0] != "pz2":
                continue
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                out.append((node.lineno, sub if _is_module(sub) else node.module))
    return out


def _is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:])
    return (SRC / relative).with_suffix(".py").is_file() or (SRC / relative).is_dir()


def _climbing(importer: str, source: str) -> list[str]:
    """The imports of module `importer` (its text: `source`) that climb a layer or cross to a sibling."""
    layer, unit = _place(importer)
    out = []
    for line, imported in _imports(source):
        target_layer, target_unit = _place(imported)
        if not (target_layer < layer or (target_layer == layer and _package(target_unit) == _package(unit))):
            out.append(f"{importer}:{line} (layer {layer}) imports {imported} (layer {target_layer})")
    return out


def test_imports_run_down_the_layers() -> None:
    climbing = [problem for path in sorted(SRC.rglob("*.py"))
                for problem in _climbing(_module_name(path), path.read_text(encoding="utf-8"))]
    assert not climbing, "imports that climb the layers:\n" + "\n".join(climbing)


@pytest.mark.parametrize(("importer", "source"), [
    ("pz2.training.confidence_fit", "def f():\n    from pz2.runtime.assistant import Assistant"),  # a sibling, lazily
    ("pz2.fileio", "from pz2.data.messages import render"),                                    # up
    ("pz2.runtime.engine", "import pz2.evaluation.compare"),                                     # a runner
    ("pz2.models.loading", "from pz2 import knowledge"),                                         # a package
])
def test_the_rule_catches_a_climbing_import(importer: str, source: str) -> None:
    assert _climbing(importer, source)


def test_the_rule_lets_imports_run_down() -> None:
    assert not _climbing("pz2.training.sft", "from pz2.models.loading import MANIFEST\nfrom pz2.training import sft_data")
    assert not _climbing("pz2.runtime.confidence", "from pz2.evaluation.metrics import binary_ece")
    with pytest.raises(AssertionError, match="no layer"):
        _place("pz2_other.module")


@pytest.mark.parametrize("module", ["pz2.runtime.router", "pz2.runtime.prediction", "pz2.runtime.confidence"])
def test_the_routing_types_load_without_torch(module: str) -> None:
    code = f"import sys, {module}; assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)[:5]"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
