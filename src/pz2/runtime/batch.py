"""Label a file of any size: read a line, label in batches, stream the results out."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from pz2.data.jsonl import iter_jsonl
from pz2.errors import DatasetError
from pz2.fileio import distinct_output, growing_file
from pz2.runtime.classifier import ConversationClassifier


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    """JSONL rows with a `text` field, or, for any other file, one text per non-blank line (UTF-8: a line
    that is not is an error with its number, never a guess)."""
    if path.suffix != ".jsonl":
        with path.open("rb") as f:
            for lineno, raw in enumerate(f, 1):
                try:
                    text = raw.decode("utf-8-sig" if lineno == 1 else "utf-8").rstrip("\r\n")
                except UnicodeDecodeError as e:
                    raise DatasetError(path, lineno, f"not UTF-8 (byte {e.start} of the line); convert the file "
                                                     "to UTF-8") from None
                if text.strip():
                    yield {"text": text}
        return
    for lineno, row in iter_jsonl(path):
        if not isinstance(row.get("text"), str):
            raise DatasetError(path, lineno, "field `text` (a string) is missing")
        yield row


def _write(clf: ConversationClassifier, path: Path, out: TextIO, batch_size: int) -> int:
    n = 0
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        for row, p in zip(batch, clf.predict([r["text"] for r in batch], batch_size), strict=True):
            out.write(json.dumps({**row, **p.to_dict()}, ensure_ascii=False) + "\n")
        batch.clear()

    for row in _rows(path):
        batch.append(row)
        n += 1
        if len(batch) == batch_size:
            flush()
    flush()
    return n


def classify_file(clf: ConversationClassifier, path: Path, output: Path | None, batch_size: int) -> int:
    """Label every row of `path`; the input's fields are kept and the prediction's added. Returns rows.
    Rows reach `output` batch by batch (`runtime.classify_batch_size`; a crash keeps the labelled ones in
    `<output>.partial`)."""
    distinct_output(path, output)
    if output is None:
        return _write(clf, path, sys.stdout, batch_size)
    with growing_file(output) as out:
        return _write(clf, path, out, batch_size)
