"""Read a dataset file for training or evaluation, refusing it with the validator's own message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pz2.config import ValidationConfig
from pz2.data.conversation import has_messages, split_conversation
from pz2.data.jsonl import read_jsonl
from pz2.data.schema import FileKind, file_info, parse_unified
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


Reference = tuple[str, str, str, tuple[dict[str, str], ...]]   # system, user turn, reference answer, earlier turns


def reference_pairs(data: Path, system_prompt: str, limit: int | None) -> list[Reference]:
    """(system, user, reference, history) of each of the first `limit` rows of a unified_* or dialogue_* file:
    a conversation row's last answer is the reference, asked after its earlier turns."""
    info = file_info(data)
    kind = info.kind if info and info.kind is not FileKind.CLASSIFICATION else FileKind.DIALOGUE
    rows = load_rows(data, kind)[:limit]
    out = []
    for r in rows:
        if has_messages(r):
            c = split_conversation(r["messages"])
            out.append((c.system or system_prompt, c.user, c.answer, tuple(c.history)))
            continue
        system, user = parse_unified(r["input_text"]) if kind is FileKind.UNIFIED else (None, r["input_text"])
        out.append((system or system_prompt, user, r["target_text"], ()))
    return out
