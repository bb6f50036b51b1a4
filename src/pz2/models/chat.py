"""The one prompt format: the base's own chat template with the system prompt of the config.

Training and inference both build prompts here, so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pz2.errors import ModelError

IGNORE_INDEX = -100  # label of a token that carries no loss: the prompt's tokens


@dataclass(frozen=True)
class ChatExample:
    """One training example: the answer to `user` after the earlier turns of `history` (user and assistant
    alternating, oldest first; empty for a single-turn row). Every assistant turn carries loss."""

    system: str
    user: str
    answer: str
    history: tuple[dict[str, str], ...] = field(default=())


_SYSTEM_ROLE: dict[str, bool] = {}   # chat template -> whether it renders a system message
_PROBE = "pz2-system-probe"


def has_system_role(tokenizer: Any) -> bool:
    """Whether the tokenizer's chat template takes a system message. Gemma's raises "System role not
    supported"; others drop it silently: both count as no."""
    template = str(tokenizer.chat_template)
    if template not in _SYSTEM_ROLE:
        try:
            text = tokenizer.apply_chat_template([{"role": "system", "content": _PROBE}, {"role": "user", "content": "hi"}],
                                                 tokenize=False)
            _SYSTEM_ROLE[template] = _PROBE in text
        except Exception:   # jinja2's TemplateError raised by the template itself (`raise_exception`)
            _SYSTEM_ROLE[template] = False
    return _SYSTEM_ROLE[template]


def chat_messages(tokenizer: Any, system_prompt: str, user: str,
                  history: Sequence[dict[str, str]] = ()) -> list[dict[str, str]]:
    """The system prompt, the earlier turns of a conversation ({role, content}, oldest first), the user turn.
    A template without a system role gets the system prompt folded into the first user turn (what Gemma's
    own documentation does), the same way in training and at inference since both build prompts here."""
    turns = [*history, {"role": "user", "content": user}]
    if has_system_role(tokenizer):
        return [{"role": "system", "content": system_prompt}, *turns]
    first = next(i for i, m in enumerate(turns) if m["role"] == "user")
    turns[first] = {"role": "user", "content": f"{system_prompt}\n\n{turns[first]['content']}"}
    return turns


def prompt_text(tokenizer: Any, system_prompt: str, user: str, history: Sequence[dict[str, str]] = ()) -> str:
    return tokenizer.apply_chat_template(chat_messages(tokenizer, system_prompt, user, history),
                                         add_generation_prompt=True, tokenize=False)


def prompt_ids(tokenizer: Any, system_prompt: str, user: str, history: Sequence[dict[str, str]] = ()) -> list[int]:
    """Token ids of the prompt up to the assistant cue: what generation starts from."""
    return tokenizer(prompt_text(tokenizer, system_prompt, user, history), add_special_tokens=False)["input_ids"]


_END_OF_TURN: dict[tuple[str, int | None], frozenset[int]] = {}


def end_of_turn_ids(tokenizer: Any) -> frozenset[int]:
    """The tokens that end an answer: the tokenizer's eos and the special token its chat template puts
    right after an assistant turn (`<|im_end|>`, Gemma's `<end_of_turn>`, Llama 3's `<|eot_id|>`)."""
    key = (str(tokenizer.chat_template), tokenizer.eos_token_id)
    if key not in _END_OF_TURN:
        _END_OF_TURN[key] = _end_of_turn(tokenizer)
    return _END_OF_TURN[key]


def _end_of_turn(tokenizer: Any) -> frozenset[int]:
    ask = [{"role": "user", "content": "hi"}]
    prompt = tokenizer(tokenizer.apply_chat_template(ask, add_generation_prompt=True, tokenize=False),
                       add_special_tokens=False)["input_ids"]
    full = tokenizer(tokenizer.apply_chat_template([*ask, {"role": "assistant", "content": "ok"}], tokenize=False),
                     add_special_tokens=False)["input_ids"]
    special = set(tokenizer.all_special_ids)
    after = next((t for t in full[len(prompt):] if t in special), None)
    return frozenset(t for t in (tokenizer.eos_token_id, after) if isinstance(t, int) and t >= 0)


def encode_example(tokenizer: Any, ex: ChatExample, max_length: int) -> dict[str, list[int]] | None:
    """The conversation's ids, with labels on every assistant turn and -100 everywhere else.

    Each assistant turn is labelled from where the runtime's prompt for it ends (`prompt_ids` with the
    turns before it as history) through the template's end-of-turn token, so the model learns to stop
    and learns from exactly the prompt it will be given. Rows whose last prompt alone fills `max_length`
    return None: there is no answer left to learn from; a longer conversation is cut at `max_length`.
    """
    turns = [*ex.history, {"role": "user", "content": ex.user}]
    full_text = tokenizer.apply_chat_template(
        [*chat_messages(tokenizer, ex.system, ex.user, ex.history), {"role": "assistant", "content": ex.answer}],
        tokenize=False)
    full = tokenizer(full_text, add_special_tokens=False)["input_ids"]
    labels = [IGNORE_INDEX] * len(full)
    stops = end_of_turn_ids(tokenizer)
    end = len(full)
    for k in [i for i, m in enumerate(turns) if m["role"] == "assistant"] + [len(turns)]:
        prompt = prompt_ids(tokenizer, ex.system, turns[k - 1]["content"], turns[: k - 1])
        if full[: len(prompt)] != prompt:
            raise ModelError("the chat template renders a conversation's earlier turns differently once later turns "
                             "follow; train on single-turn rows with this base")
        stop = next((i for i in range(len(prompt), len(full)) if full[i] in stops), len(full) - 1)
        labels[len(prompt): stop + 1] = full[len(prompt): stop + 1]
        end = stop + 1            # after the last answer: drop what the template adds past end-of-turn
    if len(prompt) >= max_length:
        return None
    return {"input_ids": full[:end][:max_length], "labels": labels[:end][:max_length]}
