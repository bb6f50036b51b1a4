"""A whole conversation as one dataset row: `messages`, the OpenAI chat format.

A unified or dialogue row holds either the seed's single turn (`input_text`, `target_text`) or a
conversation: an optional system message, then user and assistant turns alternating, ending with
the assistant. Training puts the loss on every assistant turn; the runtime builds the same prompt
for the same conversation (models/chat.py), so what the model learns is what it is asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ROLES: tuple[str, ...] = ("system", "user", "assistant")


@dataclass(frozen=True)
class Conversation:
    system: str | None                  # the conversation's own system message, if it has one
    history: list[dict[str, str]]       # the turns before the last user turn, oldest first
    user: str                           # the last user turn
    answer: str                         # the assistant's answer to it


def has_messages(row: dict[str, Any]) -> bool:
    return "messages" in row


def conversation_problems(messages: list[Any], max_chars: int) -> list[tuple[str, dict[str, Any]]]:
    """What makes `messages` unusable for training, as validator message codes: a malformed turn,
    a role out of order, an empty or over-long turn. Empty when the conversation is well formed."""
    problems: list[tuple[str, dict[str, Any]]] = []
    if not messages:
        return [("turns_empty", {})]
    for i, m in enumerate(messages, start=1):
        if not (isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str)):
            return [("turn_shape", {"turn": i})]
    start = 1 if messages[0]["role"] == "system" else 0
    for i, m in enumerate(messages[start:], start=start + 1):
        expected = "user" if (i - start) % 2 else "assistant"
        if m["role"] != expected:
            problems.append(("turn_order", {"turn": i, "role": m["role"], "expected": expected}))
            return problems
    if len(messages) == start or messages[-1]["role"] != "assistant":
        problems.append(("turn_last", {}))
    for i, m in enumerate(messages, start=1):
        if not m["content"].strip():
            problems.append(("empty_text", {"field": f"messages[{i}].content"}))
        elif len(m["content"]) > max_chars:
            problems.append(("too_long_chars", {"field": f"messages[{i}].content", "chars": len(m["content"]),
                                                "limit": max_chars}))
    return problems


def split_conversation(messages: list[dict[str, str]]) -> Conversation:
    """A well-formed conversation (see `conversation_problems`) as system, history, last user turn, answer."""
    system = messages[0]["content"] if messages[0]["role"] == "system" else None
    turns = [{"role": m["role"], "content": m["content"]} for m in messages[system is not None:]]
    return Conversation(system, turns[:-2], turns[-2]["content"], turns[-1]["content"])


def user_turns(messages: list[dict[str, str]]) -> list[str]:
    return [m["content"] for m in messages if m["role"] == "user"]


def last_exchange(row: dict[str, Any]) -> tuple[str, str]:
    """(last user turn, its answer) of a single-turn or conversation row: what retrieval grounds."""
    if has_messages(row):
        c = split_conversation(row["messages"])
        return c.user, c.answer
    return row["input_text"], row["target_text"]


def with_answer(row: dict[str, Any], answer: str) -> dict[str, Any]:
    """The row with its last answer replaced (a RAFT row's answer citing its passage)."""
    if has_messages(row):
        return {**row, "messages": [*row["messages"][:-1], {"role": "assistant", "content": answer}]}
    return {**row, "target_text": answer}
