"""Read a dataset file for training or evaluation, refusing it with the validator's own message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pz2.config import ValidationConfig
from pz2.data.jsonl import read_jsonl
from pz2.data.schema import FileKind
from pz2.data.validate import Severity, check_file
from pz2.errors import DatasetError

# Problems an evaluation set may keep: the model must cope with them, not the loader.
EVALUATION_TOLERATES = frozenset({"duplicate", "empty_text", "too_short", "too_long_chars"})


def load_rows(
    path: Path, kind: FileKind, cfg: ValidationConfig | None = None, tolerate: frozenset[str] = frozenset()
) -> list[dict[str, Any]]:
    """All rows of `path` as `kind`; the first error not in `tolerate` raises `DatasetError`."""
    if not path.is_file():
        raise DatasetError(path, None, "file not found; run `pz2 data generate` first" if path.suffix == ".jsonl"
                           else "file not found")
    _, issues, _ = check_file(path, kind, cfg or ValidationConfig())
    errors = [i for i in issues if i.severity is Severity.ERROR and i.code not in tolerate]
    if errors:
        more = f" (and {len(errors) - 1} more: run `pz2 data validate {path}`)" if len(errors) > 1 else ""
        raise DatasetError(path, errors[0].line, errors[0].message() + more)
    return read_jsonl(path)
