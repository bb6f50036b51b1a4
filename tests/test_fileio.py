"""Atomic writes and line-numbered reads: a failed write leaves the old file, a bad line names its number."""

from __future__ import annotations

from pathlib import Path

import pytest

from pz2.data.jsonl import read_jsonl
from pz2.errors import DatasetError
from pz2.fileio import atomic_directory, atomic_write_jsonl, atomic_write_text


def test_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "data.jsonl"
    atomic_write_text(target, "old\n")

    def rows():
        yield {"a": 1}
        raise KeyboardInterrupt  # killed halfway through producing the rows

    with pytest.raises(KeyboardInterrupt):
        atomic_write_jsonl(target, rows())
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["data.jsonl"]


def test_atomic_directory_replaces_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "model"
    with atomic_directory(target) as tmp:
        (tmp / "weights").write_text("v1")
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "weights").write_text("half")
        raise RuntimeError("crash")
    assert (target / "weights").read_text() == "v1"
    with atomic_directory(target) as tmp:
        (tmp / "weights").write_text("v2")
    assert (target / "weights").read_text() == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


@pytest.mark.parametrize(
    ("content", "line", "problem"),
    [
        (b'{"a": 1}\n{"a": 2\n', 2, "invalid JSON"),
        (b'{"a": 1}\n\n[1, 2]\n', 3, "expected a JSON object, got list"),
        (b'{"a": "\xff"}\n', 1, "invalid UTF-8 at byte 7"),
    ],
)
def test_read_jsonl_names_the_line(tmp_path: Path, content: bytes, line: int, problem: str) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(content)
    with pytest.raises(DatasetError) as e:
        read_jsonl(path)
    assert e.value.line == line
    assert str(e.value).startswith(f"{path}:{line}: {problem}")


def test_read_jsonl_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="file not found"):
        read_jsonl(tmp_path / "missing.jsonl")
