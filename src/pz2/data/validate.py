"""Check dataset files and report every problem with its file and line.

The validator opens inputs read-only and never stops at the first problem: a user fixing a
generated or hand-edited file wants the whole list. Errors make the run fail (exit 1);
warnings (imbalance, unknown fields) are reported but do not.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from pz2.config import ValidationConfig
from pz2.data.conversation import conversation_problems, last_exchange
from pz2.data.jsonl import jsonl_lines
from pz2.data.messages import render
from pz2.data.schema import (
    CITATION,
    DEFAULT_FILES,
    LABELS,
    OPTIONAL,
    PASSAGE_FIELDS,
    FileKind,
    file_info,
    normalize,
    required_fields,
    user_text,
)

# Counts tokens of many texts at once; `None` skips the token limit.
TokenCounter = Callable[[list[str]], list[int]]

_TYPE_NAMES = {str: "a string", int: "an integer", list: "a list", (int, float): "a number"}
_SPLIT_ORDER = {"train": 0, "validation": 1, "test": 2}


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Issue:
    severity: Severity
    code: str
    path: Path
    line: int | None
    params: dict[str, Any] = field(default_factory=dict)

    def message(self, lang: str = "en") -> str:
        return render(self.code, lang, **self.params)

    def location(self) -> str:
        return f"{self.path}:{self.line}" if self.line else str(self.path)


@dataclass
class FileReport:
    path: Path
    kind: FileKind | None
    rows: int = 0
    labels: dict[str, int] = field(default_factory=dict)  # label or category name -> rows


@dataclass
class ValidationReport:
    files: list[FileReport] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity is Severity.WARNING]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self, lang: str = "en") -> dict[str, Any]:
        return {
            "ok": self.ok,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "files": [
                {"path": str(f.path), "kind": f.kind.value if f.kind else None, "rows": f.rows, "labels": f.labels}
                for f in self.files
            ],
            "issues": [
                {"severity": i.severity.value, "code": i.code, "path": str(i.path), "line": i.line,
                 "message": i.message(lang)}
                for i in self.issues
            ],
        }


def dataset_files(directory: Path) -> list[Path]:
    """The JSONL files of a dataset directory, the seed's nine first, in its order."""
    present = sorted(directory.glob("*.jsonl"))
    rank = {name: i for i, name in enumerate(DEFAULT_FILES)}
    return sorted(present, key=lambda p: (rank.get(p.name, len(rank)), p.name))


def validate_directory(
    directory: Path, cfg: ValidationConfig, count_tokens: TokenCounter | None = None, require_defaults: bool = True
) -> ValidationReport:
    """Validate every dataset file in `directory`; with `require_defaults`, a missing seed file is an error."""
    report = validate_files(dataset_files(directory), cfg, count_tokens)
    if require_defaults:
        for name in DEFAULT_FILES:
            if not (directory / name).exists():
                report.issues.insert(0, Issue(Severity.ERROR, "file_missing", directory / name, None))
    return report


def validate_files(paths: Iterable[Path], cfg: ValidationConfig, count_tokens: TokenCounter | None = None,
                   kinds: dict[Path, FileKind] | None = None) -> ValidationReport:
    """`kinds`: the kind of a file whose name says none (`pz2 data validate FILE --kind ...`); any
    other file of unknown name is skipped with a warning (a folder may hold unrelated files)."""
    report = ValidationReport()
    questions: dict[Path, dict[str, int]] = {}  # file -> normalised question -> first line
    for path in paths:
        info = file_info(path)
        kind = (kinds or {}).get(path) or (info.kind if info else None)
        if kind is None:
            report.issues.append(Issue(Severity.WARNING, "unknown_file", path, None))
            continue
        file_report, issues, seen = check_file(path, kind, cfg, count_tokens)
        report.files.append(file_report)
        report.issues += issues
        questions[path] = seen
    report.issues += _leaks(questions)
    return report


def check_row(row: dict[str, Any], kind: FileKind, cfg: ValidationConfig) -> list[tuple[Severity, str, dict]]:
    """One row's problems as (severity, message code, parameters); the import of a user's data drops a row on them."""
    problems: list[tuple[Severity, str, dict]] = []
    required = required_fields(kind, row)
    for name, typ in required.items():
        if name not in row:
            problems.append((Severity.ERROR, "missing_field", {"field": name}))
        elif not isinstance(row[name], typ) or isinstance(row[name], bool):
            got = "null" if row[name] is None else type(row[name]).__name__
            problems.append((Severity.ERROR, "wrong_type", {"field": name, "expected": _TYPE_NAMES[typ], "got": got}))
    for name, value in row.items():
        if name == "passages" and kind is FileKind.DIALOGUE:
            problems += _check_passages(value, row.get("target_text"))
        elif name in OPTIONAL:
            if not isinstance(value, OPTIONAL[name]) or isinstance(value, bool):
                got = type(value).__name__
                problems.append((Severity.ERROR, "wrong_type",
                                 {"field": name, "expected": _TYPE_NAMES[OPTIONAL[name]], "got": got}))
        elif name not in required:
            problems.append((Severity.WARNING, "unknown_field", {"field": name}))
    if problems and any(s is Severity.ERROR for s, _, _ in problems):
        return problems
    if kind is FileKind.CLASSIFICATION and not 0 <= row["label"] < len(LABELS):
        problems.append((Severity.ERROR, "label_range", {"label": row["label"]}))
    if kind is FileKind.UNIFIED and row["category"] not in LABELS:
        problems.append((Severity.ERROR, "category_unknown", {"category": row["category"]}))
    if "messages" in required:
        problems += [(Severity.ERROR, code, params) for code, params in conversation_problems(row["messages"], cfg.max_chars)]
        if not problems and isinstance(row.get("passages"), list):
            problems += _check_passages(row["passages"], last_exchange(row)[1])
    for name, typ in required.items():
        if typ is not str:
            continue
        text: str = row[name]
        if not text.strip():
            problems.append((Severity.ERROR, "empty_text", {"field": name}))
        elif len(text.strip()) < cfg.min_chars:
            problems.append((Severity.ERROR, "too_short", {"field": name, "chars": len(text.strip()), "limit": cfg.min_chars}))
        elif len(text) > cfg.max_chars:
            problems.append((Severity.ERROR, "too_long_chars", {"field": name, "chars": len(text), "limit": cfg.max_chars}))
    return problems


def _texts(row: dict[str, Any], kind: FileKind) -> list[str]:
    """The row's words the token limit counts: every turn of a conversation."""
    if "messages" in row and kind is not FileKind.CLASSIFICATION:
        return [m["content"] for m in row["messages"]]
    return [row[n] for n, t in required_fields(kind, row).items() if t is str]


def _check_passages(passages: Any, answer: Any) -> list[tuple[Severity, str, dict]]:
    """A RAFT row's passages are well formed, and its answer cites only passages it has."""
    if not isinstance(passages, list):
        return [(Severity.ERROR, "passages_shape", {"item": "the field itself"})]
    for i, p in enumerate(passages, start=1):
        if not (isinstance(p, dict) and all(isinstance(p.get(f), str) and p[f].strip() for f in PASSAGE_FIELDS)):
            return [(Severity.ERROR, "passages_shape", {"item": i})]
    if isinstance(answer, str):
        for n in sorted({int(m) for m in CITATION.findall(answer)}):
            if not 1 <= n <= len(passages):
                return [(Severity.ERROR, "citation_range", {"n": n, "count": len(passages)})]
    return []


def check_file(
    path: Path, kind: FileKind, cfg: ValidationConfig, count_tokens: TokenCounter | None = None
) -> tuple[FileReport, list[Issue], dict[str, int]]:
    """Validate one file as `kind`: its report, its issues by line, and its normalised questions."""
    report = FileReport(path, kind)
    issues: list[Issue] = []
    seen: dict[str, int] = {}
    labels: Counter[str] = Counter()
    texts: list[tuple[int, str]] = []
    for lineno, row, problem in jsonl_lines(path):  # read-only: the validator never touches its inputs
        if problem:
            issues.append(Issue(Severity.ERROR, problem[0], path, lineno, problem[1]))
            continue
        report.rows += 1
        problems = check_row(row, kind, cfg)
        issues += [Issue(sev, code, path, lineno, params) for sev, code, params in problems]
        if any(sev is Severity.ERROR for sev, _, _ in problems):
            continue
        if kind is FileKind.CLASSIFICATION:
            labels[LABELS[row["label"]]] += 1
        elif kind is FileKind.UNIFIED:
            labels[row["category"]] += 1
        key = normalize(user_text(kind, row))
        if key in seen:
            issues.append(Issue(Severity.ERROR, "duplicate", path, lineno, {"first": seen[key]}))
        else:
            seen[key] = lineno
        quoted = [p["text"] for p in row.get("passages", [])] if kind is FileKind.DIALOGUE else []
        texts.append((lineno, "\n".join([*quoted, *_texts(row, kind)])))
    if report.rows == 0 and not issues:
        issues.append(Issue(Severity.ERROR, "file_empty", path, None))
    if count_tokens is not None and texts:
        for (lineno, _), n in zip(texts, count_tokens([t for _, t in texts]), strict=True):
            if n > cfg.max_tokens:
                issues.append(Issue(Severity.ERROR, "too_long_tokens", path, lineno, {"tokens": n, "limit": cfg.max_tokens}))
    if labels:
        report.labels = {name: labels.get(name, 0) for name in LABELS}
        issues += _distribution(path, report.labels, cfg)
    issues.sort(key=lambda i: i.line or 0)
    return report, issues, seen


def _distribution(path: Path, counts: dict[str, int], cfg: ValidationConfig) -> list[Issue]:
    issues = [Issue(Severity.WARNING, "label_absent", path, None, {"label": name}) for name, n in counts.items() if n == 0]
    present = [n for n in counts.values() if n]
    if present and max(present) / min(present) > cfg.imbalance_ratio:
        ratio = max(present) / min(present)
        issues.append(Issue(Severity.WARNING, "imbalance", path, None,
                            {"ratio": ratio, "limit": cfg.imbalance_ratio, "counts": counts}))
    return issues


def _leaks(questions: dict[Path, dict[str, int]]) -> list[Issue]:
    """A question in a train file that reappears in a validation or test file (any kind) leaks.

    Each leaked line is reported in the later split's file, pointing at the earlier occurrence.
    """
    issues: list[Issue] = []
    by_split: dict[str, list[Path]] = {}
    for path in questions:
        info = file_info(path)
        if info and info.split in _SPLIT_ORDER:
            by_split.setdefault(info.split, []).append(path)
    ordered = sorted(by_split, key=_SPLIT_ORDER.__getitem__)
    first_seen: dict[str, tuple[str, Path, int]] = {}
    for split in ordered:
        for path in by_split[split]:
            for key, line in questions[path].items():
                earlier = first_seen.get(key)
                if earlier is None:
                    first_seen[key] = (split, path, line)
                elif earlier[0] != split:
                    issues.append(Issue(Severity.ERROR, "leak", path, line, {"other": earlier[1], "other_line": earlier[2]}))
    return issues
