"""Hand-written topic banks: the facts every generated row is built from.

Each entry is written once, checked by a person, and rendered in many phrasings by
`pz2.data.generate`; splitting happens per entry, so a topic never sits in two splits.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Concept:
    """A qna topic: `subject` fits "What is {subject}?" and "Tell me about {subject}."."""

    area: str
    subject: str
    answer: str                # the unified model's short answer
    points: tuple[str, ...]    # the specialist's detail, rendered as a numbered list
    questions: tuple[str, ...] = ()  # verbatim questions beyond the templates (the seed's own)


@dataclass(frozen=True)
class Task:
    """A technical topic: `task` fits "How do I {task} in {tool}?"."""

    tool: str
    task: str
    answer: str                # short answer
    steps: tuple[str, ...]     # the specialist's numbered steps
    tip: str = ""
    questions: tuple[str, ...] = ()  # verbatim questions beyond the templates (the seed's own)


@dataclass(frozen=True)
class Problem:
    """A technical problem stated as a symptom: an error message or a thing that misbehaves."""

    tool: str
    symptom: str               # fits "I get {symptom}" / "{symptom} - how do I fix it?"
    answer: str
    steps: tuple[str, ...]
    tip: str = ""


@dataclass(frozen=True)
class Intent:
    """A general-conversation intent: utterances a person might say, and fitting replies."""

    name: str
    utterances: tuple[str, ...]
    replies: tuple[str, ...]
