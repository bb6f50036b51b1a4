"""A user's own conversations, in the formats people already have, converted to the seed's files.

Formats: `messages` (OpenAI chat: {"messages": [{"role", "content"}]}), `sharegpt` ({"conversations":
[{"from", "value"}]}), `alpaca` ({"instruction", "input", "output"}, optional "system" and "history").
Files: JSONL, a JSON array, Parquet, CSV, or a folder written by `datasets`' `save_to_disk`; the last
three are read with the `datasets` library. A conversation lands in one split by a hash of its user turns
(so it never straddles train and test, and a repeated question stays on one side); every conversation
dropped is reported with its line or row and why. Texts are kept as written: no case, spacing or name is
changed, so a product's name or a command reaches training exactly as the user wrote it.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pz2.config import ValidationConfig
from pz2.data.conversation import user_turns
from pz2.data.jsonl import jsonl_lines
from pz2.data.messages import render
from pz2.data.real import split_of
from pz2.data.schema import LABEL_IDS, LABELS, SPLITS, FileKind, normalize, user_text
from pz2.errors import DatasetError, UsageError
from pz2.fileio import atomic_directory, atomic_write_json, atomic_write_jsonl

logger = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("messages", "sharegpt", "alpaca")
TABLE_SUFFIXES = (".parquet", ".csv")
REPORT = "import_report.json"
# ShareGPT's speaker names as the exports of FastChat, Vicuna, LLaMA-Factory and Axolotl write them.
SHAREGPT_ROLES: dict[str, str] = {"system": "system", "human": "user", "user": "user", "gpt": "assistant",
                                  "assistant": "assistant", "chatgpt": "assistant", "bard": "assistant",
                                  "bing": "assistant", "model": "assistant"}
OPENAI_ROLES: dict[str, str] = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}

# Labels the first user turns of conversations: (category, probability) each. The CLI passes the trained
# conversation classifier; the data layer does not load models.
Labeller = Callable[[list[str]], list[tuple[str, float]]]


@dataclass(frozen=True)
class Record:
    where: str              # "line 12" (JSONL), "item 3" (a JSON array), "row 7" (a table); file-prefixed in a folder
    value: dict[str, Any]


Kept = tuple[Record, list[dict[str, str]], str, str]   # record, its turns, category, normalised user turns


class Skip(Exception):
    """A record that cannot become a conversation; its message says why."""


# ---------------------------------------------------------------- reading


def read_records(path: Path) -> Iterator[Record]:
    """Every record of a file or folder, in order, read-only."""
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder")
    if path.is_dir():
        if any((path / name).is_file() for name in ("dataset_info.json", "state.json", "dataset_dict.json")):
            yield from _table_records(path, "")
            return
        files = sorted(p for p in path.iterdir() if p.suffix in (".jsonl", ".json", *TABLE_SUFFIXES))
        if not files:
            raise UsageError(f"{path}: no .jsonl, .json, .parquet or .csv file, and not a `save_to_disk` folder")
        for f in files:
            yield from _file_records(f, f"{f.name}:")
        return
    yield from _file_records(path, "")


def _file_records(path: Path, prefix: str) -> Iterator[Record]:
    if path.suffix in TABLE_SUFFIXES:
        yield from _table_records(path, prefix)
    elif path.suffix == ".json" and _starts_with(path, b"["):
        try:
            items = json.loads(path.read_bytes())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DatasetError(path, None, f"not a JSON array: {e}") from None
        for i, item in enumerate(items, start=1):
            if not isinstance(item, dict):
                raise DatasetError(path, None, f"item {i}: " + render("not_object", got=type(item).__name__))
            yield Record(f"{prefix}item {i}", item)
    else:
        for lineno, obj, problem in jsonl_lines(path):
            if problem:
                raise DatasetError(path, lineno, render(problem[0], **problem[1]))
            yield Record(f"{prefix}line {lineno}", obj)


def _starts_with(path: Path, first: bytes) -> bool:
    with path.open("rb") as f:
        return f.read(4096).lstrip().startswith(first)


def _table_records(path: Path, prefix: str) -> Iterator[Record]:
    """Rows of a Parquet or CSV file or a `save_to_disk` folder (all its splits, in order), with the `datasets`
    library; a CSV cell holding a JSON list (a `messages` column) is parsed."""
    try:
        import datasets
        from datasets import Dataset, DatasetDict, load_from_disk
    except ImportError as e:
        shadow = getattr(sys.modules.get("datasets"), "__path__", None)
        why = (f"the folder {list(shadow)[0]} hides the library: run pz2 from another folder" if shadow else str(e))
        raise UsageError(f"{path}: reading Parquet, CSV and `save_to_disk` folders needs the `datasets` library "
                         f"({why})") from None
    with tempfile.TemporaryDirectory(prefix="pz2-import-") as cache:   # never the user's HF cache
        datasets.disable_progress_bars()
        try:
            if path.is_dir():
                loaded = load_from_disk(str(path), keep_in_memory=True)
                parts = list(loaded.values()) if isinstance(loaded, DatasetDict) else [loaded]
            elif path.suffix == ".parquet":
                parts = [Dataset.from_parquet(str(path), cache_dir=cache, keep_in_memory=True)]
            else:
                parts = [Dataset.from_csv(str(path), cache_dir=cache, keep_in_memory=True)]
        except Exception as e:   # arrow, pandas and fsspec each raise their own type for a broken file
            raise DatasetError(path, None, f"cannot be read as {'a dataset folder' if path.is_dir() else path.suffix[1:]}: "
                                           f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        n = 0
        for part in parts:
            for row in part.to_list():
                n += 1
                yield Record(f"{prefix}row {n}", {k: _cell(k, v) for k, v in row.items()})


LIST_COLUMNS = ("messages", "conversations", "history")   # written as JSON text in a CSV cell


def _cell(column: str, value: Any) -> Any:
    if column in LIST_COLUMNS and isinstance(value, str) and value.lstrip().startswith("["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def table_license(path: Path) -> str | None:
    """The licence a `save_to_disk` folder's dataset card declares, if any."""
    info = path / "dataset_info.json" if path.is_dir() else None
    if info is None or not info.is_file():
        info = next(path.glob("*/dataset_info.json"), None) if path.is_dir() else None
    if info is None:
        return None
    try:
        return json.loads(info.read_text(encoding="utf-8")).get("license") or None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


# ---------------------------------------------------------------- formats


def detect_format(records: list[Record], source: Path) -> str:
    """The format of the first records' keys; a shape none of the formats has is refused in one line."""
    keys: Counter[str] = Counter()
    for r in records:
        if isinstance(r.value.get("messages"), list):
            keys["messages"] += 1
        elif isinstance(r.value.get("conversations"), list):
            keys["sharegpt"] += 1
        elif "instruction" in r.value and "output" in r.value:
            keys["alpaca"] += 1
    if not keys:
        seen = sorted({k for r in records for k in r.value})[:8]
        raise UsageError(f"{source}: cannot tell the format from its first rows (keys: {', '.join(seen) or 'none'}); "
                         "expected `messages` (OpenAI), `conversations` (ShareGPT) or `instruction`+`output` (Alpaca)")
    return keys.most_common(1)[0][0]


def to_messages(value: dict[str, Any], fmt: str) -> list[dict[str, str]]:
    """One record as {role, content} turns; raises `Skip` with the reason when it has no usable conversation."""
    if fmt == "alpaca":
        return _alpaca(value)
    turns = value.get("messages" if fmt == "messages" else "conversations")
    if not isinstance(turns, list):
        raise Skip(f"no `{'messages' if fmt == 'messages' else 'conversations'}` list")
    out = []
    for i, turn in enumerate(turns, start=1):
        if not isinstance(turn, dict):
            raise Skip(f"turn {i} is not an object")
        if fmt == "sharegpt" and "from" in turn:
            speaker, content, names = str(turn.get("from")).lower(), turn.get("value"), SHAREGPT_ROLES
        else:
            speaker, content, names = str(turn.get("role")).lower(), turn.get("content"), OPENAI_ROLES
        if speaker not in names:
            raise Skip(f"turn {i} has role {speaker!r} (tool and function turns are not trained on)")
        out.append({"role": names[speaker], "content": _text(content, i)})
    return out


def _text(content: Any, turn: int) -> str:
    """A turn's text: a string, or the text parts of OpenAI's list-of-parts content."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return "".join(str(p.get("text", "")) for p in content)
    raise Skip(f"turn {turn} has no text content" if content is None else f"turn {turn} holds non-text content")


def _alpaca(value: dict[str, Any]) -> list[dict[str, str]]:
    instruction, extra, output = value.get("instruction"), value.get("input") or "", value.get("output")
    if not isinstance(instruction, str) or not isinstance(output, str) or not isinstance(extra, str):
        raise Skip("`instruction` and `output` must be strings")
    turns = [{"role": "system", "content": value["system"]}] if isinstance(value.get("system"), str) and value["system"] else []
    for pair in value.get("history") or []:
        if not (isinstance(pair, list | tuple) and len(pair) == 2 and all(isinstance(t, str) for t in pair)):
            raise Skip("`history` must be a list of [question, answer] pairs")
        turns += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
    user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    return [*turns, {"role": "user", "content": user}, {"role": "assistant", "content": output}]


# ---------------------------------------------------------------- conversion


@dataclass
class OwnImportReport:
    source: Path
    out_dir: Path
    format: str
    detected: bool
    category_from: str
    license: str
    read: int = 0
    kept: int = 0
    rows: dict[str, int] = field(default_factory=dict)                  # file name -> rows written
    dropped: dict[str, list[str]] = field(default_factory=dict)         # reason -> where ("line 12", ...)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"source": str(self.source), "out_dir": str(self.out_dir), "format": self.format,
                "detected": self.detected, "category_from": self.category_from, "license": self.license,
                "read": self.read, "kept": self.kept, "rows": self.rows,
                "dropped": {reason: {"count": len(where), "where": where} for reason, where in self.dropped.items()},
                "seconds": round(self.seconds, 2)}


@dataclass(frozen=True)
class Categories:
    """Where each conversation's category comes from: one for all, a column of the records, or the classifier."""

    fixed: str | None = None
    column: str | None = None
    labeller: Labeller | None = None

    @property
    def described(self) -> str:
        return (f"--category {self.fixed}" if self.fixed else f"column `{self.column}`" if self.column
                else "the trained classifier")

    @property
    def labels_exist(self) -> bool:
        """Whether the categories are labels a person gave (the classifier must not learn its own guesses)."""
        return self.labeller is None


def column_category(value: Any) -> str:
    """A category cell as a label name: qna/technical/general, or its id 0/1/2."""
    if isinstance(value, str) and value.strip().lower() in LABEL_IDS:
        return value.strip().lower()
    if isinstance(value, int | str) and not isinstance(value, bool) and str(value).strip() in ("0", "1", "2"):
        return LABELS[int(value)]
    raise Skip(f"category {value!r} is not one of qna, technical, general (or 0, 1, 2)")


def import_conversations(source: Path, out_dir: Path, fmt: str, categories: Categories, license: str | None,
                         cfg: ValidationConfig) -> OwnImportReport:
    """Convert `source` to unified_*, dialogue_<category>_* and (when the categories are given) classification_*
    files in `out_dir`, split by a hash of each conversation's user turns, with `import_report.json`. The folder
    is replaced as a whole, atomically: a folder this import did not write before is refused."""
    from pz2.data.validate import Severity, check_row

    start = time.perf_counter()
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / REPORT).is_file():
        raise UsageError(f"{out_dir}: the folder holds files `pz2 data import` did not write; choose another --output")
    if out_dir.resolve() in (source.resolve(), *source.resolve().parents):
        raise UsageError(f"{out_dir}: --output must not hold the input: inputs are never modified")
    records = iter(read_records(source))
    head = [r for _, r in zip(range(20), records, strict=False)]
    detected = fmt == "auto"
    fmt = detect_format(head, source) if detected else fmt
    report = OwnImportReport(source, out_dir, fmt, detected, categories.described,
                             license or table_license(source) or "unspecified")
    kept: list[Kept] = []
    seen: dict[str, str] = {}
    for record in [*head, *records]:
        report.read += 1
        try:
            messages = to_messages(record.value, fmt)
            category = column_category(record.value.get(categories.column)) if categories.column else (categories.fixed or "")
            row = {"messages": messages, "category": category or "general"}
            problems = [render(code, **params) for sev, code, params in check_row(row, FileKind.UNIFIED, cfg)
                        if sev is Severity.ERROR]
            if problems:
                raise Skip(problems[0])
            key = normalize(user_text(FileKind.UNIFIED, row))   # what the validator calls a duplicate
            if key in seen:
                raise Skip(f"the same user turns as {seen[key]}")
        except Skip as e:
            report.dropped.setdefault(str(e), []).append(record.where)
            continue
        seen[key] = record.where
        kept.append((record, messages, category, key))
    probabilities: list[float | None] = [None] * len(kept)
    if categories.labeller is not None and kept:
        labelled = categories.labeller([user_turns(m)[0] for _, m, _, _ in kept])
        kept = [(r, m, label, key) for (r, m, _, key), (label, _) in zip(kept, labelled, strict=True)]
        probabilities = [round(p, 4) for _, p in labelled]
    report.kept = len(kept)
    with atomic_directory(out_dir) as tmp:
        _write(report, tmp, kept, probabilities, categories.labels_exist)
        report.seconds = time.perf_counter() - start
        atomic_write_json(tmp / REPORT, report.to_dict())
    logger.info("imported %d of %d conversations from %s (%s) into %s", report.kept, report.read, source, fmt, out_dir)
    return report


def _write(report: OwnImportReport, folder: Path, kept: list[Kept], probabilities: list[float | None],
           labelled: bool) -> None:
    name = report.source.name
    files: dict[str, list[dict[str, Any]]] = {}
    classified: set[str] = set()
    for (record, messages, category, key), p in zip(kept, probabilities, strict=True):
        split = split_of(key)
        meta = {"source": f"{name}:{record.where}", "license": report.license}
        unified = {"messages": messages, "category": category, **meta}
        if p is not None:
            unified["category_probability"] = p
        files.setdefault(f"unified_{split}.jsonl", []).append(unified)
        files.setdefault(f"dialogue_{category}_{split}.jsonl", []).append({"messages": messages, **meta})
        first = user_turns(messages)[0]
        if labelled and normalize(first) not in classified:   # the turn that sets the topic; later ones ("thanks") do not
            classified.add(normalize(first))
            files.setdefault(f"classification_{split}.jsonl", []).append({"text": first, "label": LABEL_IDS[category], **meta})
    order = {s: i for i, s in enumerate(SPLITS)}
    for file_name in sorted(files, key=lambda f: (f.split("_")[0], order.get(f.rsplit("_", 1)[1][:-6], 9), f)):
        report.rows[file_name] = atomic_write_jsonl(folder / file_name, files[file_name])
