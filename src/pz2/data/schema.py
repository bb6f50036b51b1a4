"""The seed's dataset formats, and the names that tie a file to its kind.

Labels follow DESIGN.md §2: 0 = qna (knowledge, concepts), 1 = technical (how to do something
with a tool, fix a software problem), 2 = general (small talk, feelings; never escalated).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from pz2.data.conversation import user_turns

LABELS: tuple[str, ...] = ("qna", "technical", "general")
LABEL_IDS: dict[str, int] = {name: i for i, name in enumerate(LABELS)}
SPLITS: tuple[str, ...] = ("train", "validation", "test")
SPECIALIST_CATEGORIES: tuple[str, ...] = ("qna", "technical")


class FileKind(str, Enum):
    CLASSIFICATION = "classification"
    DIALOGUE = "dialogue"
    UNIFIED = "unified"


# Required fields and their JSON types, per kind. `source` (where the row came from) is optional
# so that hand-written files in the seed's bare format validate too.
REQUIRED: dict[FileKind, dict[str, type]] = {
    FileKind.CLASSIFICATION: {"text": str, "label": int},
    FileKind.DIALOGUE: {"input_text": str, "target_text": str},
    FileKind.UNIFIED: {"input_text": str, "target_text": str, "category": str},
}
# A conversation row (data/conversation.py) holds `messages` instead of the single turn's two fields.
REQUIRED_CONVERSATION: dict[FileKind, dict[str, type]] = {
    FileKind.DIALOGUE: {"messages": list},
    FileKind.UNIFIED: {"messages": list, "category": str},
}
# `license` and `category_probability` (the classifier's, when it chose the category) come with imported rows.
OPTIONAL: dict[str, type | tuple[type, ...]] = {"source": str, "license": str, "category_probability": (int, float)}
# A retrieval-augmented (RAFT) dialogue row also carries the passages its prompt quotes, as
# [{"title", "text", "path"}], numbered from 1 in order; its answer cites them as [n].
PASSAGE_FIELDS: tuple[str, ...] = ("title", "text", "path")
CITATION = re.compile(r"\[(\d{1,2})\]")

# The seed's nine files, in the order it lists them.
DEFAULT_FILES: tuple[str, ...] = (
    "classification_train.jsonl",
    "classification_validation.jsonl",
    "classification_test.jsonl",
    "dialogue_qna_train.jsonl",
    "dialogue_technical_train.jsonl",
    "dialogue_general_train.jsonl",
    "unified_train.jsonl",
    "unified_validation.jsonl",
    "unified_test.jsonl",
)

_NAME = re.compile(r"^(classification|unified|dialogue_(qna|technical|general))_(\w+)\.jsonl$")


@dataclass(frozen=True)
class FileInfo:
    kind: FileKind
    split: str            # "train", "validation", "test" or any other suffix a user chose
    category: str | None  # dialogue files only


def file_info(path: Path) -> FileInfo | None:
    """Tell a dataset file's kind from its name; None when the name follows no known pattern."""
    m = _NAME.match(path.name)
    if not m:
        return None
    head, category, split = m.groups()
    kind = FileKind.DIALOGUE if category else FileKind(head)
    return FileInfo(kind, split, category)


def unified_input(system_prompt: str, user_text: str) -> str:
    """The seed's unified prompt: system prompt, the user's turn, and the assistant cue."""
    return f"System: {system_prompt}\n\nUser: {user_text}\nAssistant:"


_UNIFIED = re.compile(r"^(?:System: (?P<system>.*?)\n\n)?User: (?P<user>.*)\nAssistant:\s*$", re.DOTALL)


def parse_unified(text: str) -> tuple[str | None, str]:
    """(system prompt, user turn) of a unified prompt; the whole text is the user turn if it has no cue."""
    m = _UNIFIED.match(text)
    return (m["system"], m["user"]) if m else (None, text)


def required_fields(kind: FileKind, row: dict[str, Any]) -> dict[str, type]:
    """The fields a row of `kind` must have: a conversation's when it holds `messages`."""
    return REQUIRED_CONVERSATION[kind] if "messages" in row and kind in REQUIRED_CONVERSATION else REQUIRED[kind]


def user_text(kind: FileKind, row: dict[str, Any]) -> str:
    """The user's words in a row: what leaks if it appears in two splits."""
    if kind is FileKind.CLASSIFICATION:
        return row["text"]
    if "messages" in row:
        return "\n".join(user_turns(row["messages"]))
    if kind is FileKind.UNIFIED:
        return parse_unified(row["input_text"])[1]
    return row["input_text"]


_NON_WORD = re.compile(r"[^\w]+")


def normalize(text: str) -> str:
    """Case, accents, punctuation and spacing folded away: two texts equal here are near duplicates."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_NON_WORD.sub(" ", text).split())
