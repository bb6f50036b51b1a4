"""Names that changed inside the supported transformers range, asked of the installed release here, once.

Between 5.0 and the newest 5.x, `TrainingArguments(group_by_length=)` became `train_sampling_strategy=`,
`gradient_checkpointing=` became `activation_checkpointing=` (the old name a deprecated alias), and a
model's `past_key_values=` became `cache=` (in its arguments and in its output). No one spelling works
across the range, so each is looked up on the class that defines it rather than guessed from a version
number; `make test` runs the lowest declared release as well as the newest (`make test-lowest`).
"""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def _training_fields() -> frozenset[str]:
    from transformers import TrainingArguments

    return frozenset(TrainingArguments.__dataclass_fields__)


@cache
def _cache_name() -> str:
    from transformers.modeling_outputs import CausalLMOutputWithPast

    return "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


def checkpointing_arguments(on: bool) -> dict[str, Any]:
    """Recompute activations in the backward pass. Non-reentrant: it needs no gradient on the inputs, so it
    works with the frozen embeddings of a LoRA model."""
    name = "activation_checkpointing" if "activation_checkpointing" in _training_fields() else "gradient_checkpointing"
    return {name: True, f"{name}_kwargs": {"use_reentrant": False}} if on else {name: False}


def sampler_arguments(group_by_length: bool) -> dict[str, Any]:
    """Batches of rows of similar length (random order of batches), or plain shuffling."""
    if "train_sampling_strategy" in _training_fields():
        return {"train_sampling_strategy": "group_by_length" if group_by_length else "random"}
    return {"group_by_length": group_by_length}


def with_cache(past: Any) -> dict[str, Any]:
    """The keyword a causal LM takes its key/value cache by."""
    return {_cache_name(): past}


def returned_cache(output: Any) -> Any:
    """The key/value cache a causal LM's forward returned."""
    return getattr(output, _cache_name())
