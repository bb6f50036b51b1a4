"""The held-out rows an evaluation answers: questions with their category and reference answers.

By default: `unified_test.jsonl` (unseen topics), the human-written test split of `pz2 data import`
and the authors' held-out short-answer questions (`HELD_OUT`). Any JSONL in the seed's unified or dialogue format works too; its fields are checked
by the validator, so a broken row stops with its line number. A generated question's detailed
answer (`dialogue_<category>_<split>.jsonl` beside a unified file) is a second reference.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from pz2.data.conversation import has_messages, last_exchange, split_conversation
from pz2.data.jsonl import jsonl_lines
from pz2.data.loading import EVALUATION_TOLERATES, load_rows
from pz2.data.real import import_real
from pz2.data.schema import LABELS, FileKind, file_info, normalize, parse_unified
from pz2.errors import DatasetError
from pz2.workspace import Workspace


@dataclass(frozen=True)
class EvalRow:
    id: str                        # "<file name>#<row number>"
    category: str | None           # the true category; None when the file does not say (the classifier's is used)
    question: str
    references: tuple[str, ...]    # the file's own reference first
    source: str                    # "generated" or the corpus the row came from
    history: tuple[dict[str, str], ...] = ()   # a conversation row's earlier turns: asked after them
    system: str | None = None      # a conversation's own system message


# Short-answer questions written by the pz2 authors for evaluation only (130 qna, 40 technical): in no training
# file, no knowledge-base passage and no corpus row (tests/test_held_out.py), so they measure where users ask.
HELD_OUT = tuple(sorted(Path(__file__).parent.glob("dialogue_*_heldout.jsonl")))


def default_files(ws: Workspace) -> list[Path]:
    """unified_test.jsonl, the human-written dialogue test files (imported on demand) and the authors' held-out
    short-answer questions."""
    if not any(ws.real_datasets.glob("dialogue_*_test.jsonl")):
        import_real(ws.real_datasets)
    return [ws.datasets / "unified_test.jsonl", *sorted(ws.real_datasets.glob("dialogue_*_test.jsonl")), *HELD_OUT]


def _kind(path: Path) -> FileKind:
    """The file's kind from its name, else from the fields of its first row."""
    info = file_info(path)
    if info is not None:
        kind = info.kind
    else:
        _, fields, _ = next(jsonl_lines(path), (0, None, None))
        kind = FileKind.UNIFIED if fields and "category" in fields else FileKind.DIALOGUE
    if kind is FileKind.CLASSIFICATION:
        raise DatasetError(path, None, "a classification file has no reference answers; give a unified_* or "
                           "dialogue_* file (`input_text`, `target_text`)")
    return kind


def _detailed_answers(path: Path) -> dict[str, str]:
    """Normalised question -> detailed answer, from the dialogue files beside a unified file."""
    info = file_info(path)
    if info is None or info.kind is not FileKind.UNIFIED:
        return {}
    out = {}
    for category in LABELS:
        sibling = path.with_name(f"dialogue_{category}_{info.split}.jsonl")
        if sibling.is_file():
            out |= {normalize(q): a for q, a in (last_exchange(r) for r in
                                                 load_rows(sibling, FileKind.DIALOGUE, tolerate=EVALUATION_TOLERATES))}
    return out


def load_file(path: Path) -> list[EvalRow]:
    kind = _kind(path)
    rows = load_rows(path, kind, tolerate=EVALUATION_TOLERATES)
    detailed = _detailed_answers(path)
    info = file_info(path)
    out = []
    for number, r in enumerate(rows, start=1):
        conversation = split_conversation(r["messages"]) if has_messages(r) else None
        if conversation is not None:
            question, refs = conversation.user, [conversation.answer]
        else:
            question = parse_unified(r["input_text"])[1] if kind is FileKind.UNIFIED else r["input_text"]
            refs = [r["target_text"]]
        category = r["category"] if kind is FileKind.UNIFIED else (info.category if info else None)
        extra = detailed.get(normalize(question))
        if extra and extra != refs[0]:
            refs.append(extra)
        out.append(EvalRow(f"{path.name}#{number}", category, question, tuple(refs), r.get("source", "unknown"),
                           tuple(conversation.history) if conversation else (),
                           conversation.system if conversation else None))
    return out


def load_eval_rows(paths: list[Path], limit: int | None, seed: int) -> list[EvalRow]:
    """Every file's rows; with `limit`, at most that many per file and category, drawn by `seed`."""
    out: list[EvalRow] = []
    for path in paths:
        groups: dict[str | None, list[EvalRow]] = defaultdict(list)
        for row in load_file(path):
            groups[row.category].append(row)
        for category in sorted(groups, key=str):
            rows = groups[category]
            if limit is not None and len(rows) > limit:
                rows = random.Random(f"{seed}:{path.name}:{category}").sample(rows, limit)
            out += rows
    if not out:
        raise DatasetError(paths[0] if paths else Path("."), None, "no rows to evaluate")
    return out
