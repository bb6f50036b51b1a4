"""Rows -> chat examples -> token ids with masked prompts, optionally packed, and their collator."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pz2.data.loading import load_rows
from pz2.data.schema import FileKind, parse_unified
from pz2.models.chat import IGNORE_INDEX, ChatExample, encode_example
from pz2.workspace import Workspace

logger = logging.getLogger(__name__)

KINDS = ("unified", "qna", "technical")


def data_files(ws: Workspace, kind: str) -> tuple[Path, Path]:
    """(train, validation) files of a model: unified_* for the unified model, dialogue_<kind>_* for a specialist."""
    stem = "unified" if kind == "unified" else f"dialogue_{kind}"
    return ws.datasets / f"{stem}_train.jsonl", ws.datasets / f"{stem}_validation.jsonl"


def load_examples(path: Path, kind: str, system_prompt: str) -> list[ChatExample]:
    """Validated rows as chat examples; a unified row keeps the system prompt written in it."""
    if kind == "unified":
        out = []
        for row in load_rows(path, FileKind.UNIFIED):
            system, user = parse_unified(row["input_text"])
            out.append(ChatExample(system or system_prompt, user, row["target_text"]))
        return out
    return [ChatExample(system_prompt, r["input_text"], r["target_text"]) for r in load_rows(path, FileKind.DIALOGUE)]


def subsample(examples: list[ChatExample], n: int | None, seed: int) -> list[ChatExample]:
    if n is None or n >= len(examples):
        return examples
    return random.Random(seed).sample(examples, n)


def tokenize(examples: list[ChatExample], tokenizer: Any, max_length: int) -> list[dict[str, list[int]]]:
    features = [encode_example(tokenizer, ex, max_length) for ex in examples]
    kept = [f for f in features if f is not None]
    if len(kept) < len(features):
        logger.warning("%d rows dropped: their prompt alone is longer than max_length=%d", len(features) - len(kept), max_length)
    return kept


def pack(features: list[dict[str, list[int]]], max_length: int) -> list[dict[str, list[int]]]:
    """Concatenate examples into blocks of exactly `max_length` tokens (the last may be shorter).

    Classic packing: an example may attend to the earlier examples of its block. It removes all
    padding, which on a CPU is where the time goes; the effect on loss is measured in benchmarks/.
    """
    blocks, ids, labels = [], [], []
    for f in features:
        ids += f["input_ids"]
        labels += f["labels"]
        while len(ids) >= max_length:
            blocks.append({"input_ids": ids[:max_length], "labels": labels[:max_length]})
            ids, labels = ids[max_length:], labels[max_length:]
    if ids:
        blocks.append({"input_ids": ids, "labels": labels})
    return blocks


@dataclass
class CompletionCollator:
    """Pads a batch to its longest row: pad id for inputs, -100 for labels, 0 in the attention mask."""

    pad_token_id: int

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            ids[i, :n] = torch.tensor(f["input_ids"])
            labels[i, :n] = torch.tensor(f["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}
