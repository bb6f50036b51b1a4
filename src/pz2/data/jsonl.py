"""The one JSONL reader: every file pz2 reads line by line goes through `jsonl_lines`.

A problem is reported with its line number and the validator's own wording (data/messages.py),
whether the caller stops at it (`iter_jsonl`) or collects them all (`pz2 data validate`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pz2.data.messages import render
from pz2.errors import DatasetError

Problem = tuple[str, dict[str, Any]]  # a message code of `pz2.data.messages` and its parameters


def parse_jsonl_line(raw: bytes) -> tuple[dict[str, Any] | None, Problem | None]:
    """Parse one raw line: (object, None), (None, problem), or (None, None) for a blank line."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, ("invalid_utf8", {"byte": e.start})
    if not text.strip():
        return None, None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        return None, ("invalid_json", {"detail": e.msg, "column": e.colno})
    if not isinstance(obj, dict):
        return None, ("not_object", {"got": type(obj).__name__})
    return obj, None


def jsonl_lines(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, Problem | None]]:
    """(line number, object or None, problem or None) for every non-blank line, read-only."""
    if not path.is_file():
        raise DatasetError(path, None, "file not found")
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            obj, problem = parse_jsonl_line(raw)
            if obj is not None or problem is not None:
                yield lineno, obj, problem


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) per non-blank line; the first bad line raises `DatasetError`."""
    for lineno, obj, problem in jsonl_lines(path):
        if problem:
            raise DatasetError(path, lineno, render(problem[0], **problem[1]))
        yield lineno, obj


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSONL file strictly; a bad line raises `DatasetError` with its line number."""
    return [row for _, row in iter_jsonl(path)]
