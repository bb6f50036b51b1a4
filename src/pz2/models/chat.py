"""The one prompt format: the base's own chat template with the system prompt of the config.

Training and inference both build prompts here, so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

IGNORE_INDEX = -100  # label of a token that carries no loss: the prompt's tokens


@dataclass(frozen=True)
class ChatExample:
    system: str
    user: str
    answer: str


def chat_messages(system_prompt: str, user: str, history: Sequence[dict[str, str]] = ()) -> list[dict[str, str]]:
    """The system prompt, the earlier turns of a conversation ({role, content}, oldest first), the user turn."""
    return [{"role": "system", "content": system_prompt}, *history, {"role": "user", "content": user}]


def prompt_text(tokenizer: Any, system_prompt: str, user: str, history: Sequence[dict[str, str]] = ()) -> str:
    return tokenizer.apply_chat_template(chat_messages(system_prompt, user, history), add_generation_prompt=True,
                                         tokenize=False)


def prompt_ids(tokenizer: Any, system_prompt: str, user: str, history: Sequence[dict[str, str]] = ()) -> list[int]:
    """Token ids of the prompt up to the assistant cue: what generation starts from."""
    return tokenizer(prompt_text(tokenizer, system_prompt, user, history), add_special_tokens=False)["input_ids"]


def encode_example(tokenizer: Any, ex: ChatExample, max_length: int) -> dict[str, list[int]] | None:
    """Prompt and answer ids, with labels only on the answer (the prompt is masked with -100).

    The answer ends with the template's end-of-turn token, so the model learns to stop. Rows whose
    prompt alone fills `max_length` return None: there is no answer left to learn from.
    """
    prompt = prompt_ids(tokenizer, ex.system, ex.user)
    full_text = tokenizer.apply_chat_template(
        [*chat_messages(ex.system, ex.user), {"role": "assistant", "content": ex.answer}], tokenize=False
    )
    full = tokenizer(full_text, add_special_tokens=False)["input_ids"]
    assert full[: len(prompt)] == prompt, "the chat template must extend the prompt it generates from"
    answer = full[len(prompt):]
    eos = tokenizer.convert_tokens_to_ids(tokenizer.eos_token)
    if eos in answer:
        answer = answer[: answer.index(eos) + 1]  # drop what the template adds after end-of-turn
    if len(prompt) >= max_length:
        return None
    ids = (prompt + answer)[:max_length]
    labels = ([IGNORE_INDEX] * len(prompt) + answer)[:max_length]
    return {"input_ids": ids, "labels": labels}
