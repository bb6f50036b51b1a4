"""Rows -> chat examples -> token ids with masked prompts, optionally packed, and their collator."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pz2.config import ModelConfig, RaftConfig, ValidationConfig
from pz2.data.loading import load_rows
from pz2.data.schema import SPECIALIST_CATEGORIES, FileKind, parse_unified
from pz2.errors import DatasetError
from pz2.fileio import atomic_write_jsonl
from pz2.knowledge.grounding import Passage, grounded_message
from pz2.knowledge.index import MANIFEST, KnowledgeIndex
from pz2.knowledge.raft import raft_file, raft_rows, sheet_rows
from pz2.models.chat import IGNORE_INDEX, ChatExample, encode_example
from pz2.models.sentence import SentenceEncoder
from pz2.workspace import Workspace

logger = logging.getLogger(__name__)

KINDS = ("unified", *SPECIALIST_CATEGORIES)


def data_files(ws: Workspace, kind: str) -> tuple[Path, Path]:
    """(train, validation) files of a model: unified_* for the unified model, dialogue_<kind>_* for a specialist."""
    stem = "unified" if kind == "unified" else f"dialogue_{kind}"
    return ws.datasets / f"{stem}_train.jsonl", ws.datasets / f"{stem}_validation.jsonl"


def load_examples(path: Path, kind: str, system_prompt: str) -> list[ChatExample]:
    """Validated rows as chat examples; a unified row keeps the system prompt written in it, a
    RAFT row's user turn quotes its passages exactly as the runtime's grounded prompt does."""
    if kind == "unified":
        out = []
        for row in load_rows(path, FileKind.UNIFIED):
            system, user = parse_unified(row["input_text"])
            out.append(ChatExample(system or system_prompt, user, row["target_text"]))
        return out
    return [ChatExample(system_prompt, grounded_message(r["input_text"], _passages(r)), r["target_text"])
            for r in load_rows(path, FileKind.DIALOGUE)]


def _passages(row: dict[str, Any]) -> list[Passage]:
    return [Passage(n, p["path"], p["title"], p["text"]) for n, p in enumerate(row.get("passages", []), start=1)]


def raft_files(ws: Workspace, kind: str, raft: RaftConfig, model_cfg: ModelConfig, tokenizer: Any,
               validation: ValidationConfig) -> tuple[Path, Path] | None:
    """Build and validate a specialist's RAFT rows from its dialogue files and the knowledge base;
    None (train on the plain rows) when RAFT is off or there is no knowledge base yet."""
    if not raft.enabled:
        return None
    if not (ws.knowledge / MANIFEST).is_file():
        logger.warning("%s: no knowledge base, so the %s specialist trains without passages (`pz2 kb build`, "
                       "then train again)", ws.knowledge, kind)
        return None
    from pz2.data.validate import Severity, check_file

    index = KnowledgeIndex.load(ws.knowledge)
    encoder = SentenceEncoder.for_knowledge(model_cfg)
    out = []
    for source in data_files(ws, kind):
        split = source.name.removesuffix(".jsonl").rsplit("_", 1)[1]
        path = raft_file(ws.datasets, kind, split)
        rows = raft_rows(load_rows(source, FileKind.DIALOGUE), index, encoder, tokenizer, raft,
                         model_cfg.runtime.retrieval)
        if kind == "technical" and split == "train":
            rows += sheet_rows(index, encoder, tokenizer, raft, model_cfg.runtime.retrieval)
        atomic_write_jsonl(path, rows)
        _, issues, _ = check_file(path, FileKind.DIALOGUE, validation)
        errors = [i for i in issues if i.severity is Severity.ERROR]
        if errors:
            raise DatasetError(path, errors[0].line, errors[0].message())
        out.append(path)
    logger.info("%s: RAFT rows with %d passages each in %s", kind, raft.passages, out[0].parent)
    return out[0], out[1]


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
    """Pads a batch to its longest row: pad id for inputs, -100 for labels, 0 in the attention mask.

    With `head_at_labels`, the batch also asks the model for its final hidden states and for
    logits at the last position only: `completion_loss` then runs the LM head where labels are.
    """

    pad_token_id: int
    head_at_labels: bool = False

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, Any]:
        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            ids[i, :n] = torch.tensor(f["input_ids"])
            labels[i, :n] = torch.tensor(f["labels"])
            mask[i, :n] = 1
        batch: dict[str, Any] = {"input_ids": ids, "labels": labels, "attention_mask": mask}
        if self.head_at_labels:
            batch.update(output_hidden_states=True, logits_to_keep=1)
        return batch


def completion_loss(head: torch.nn.Module) -> Any:
    """A `compute_loss_func` for transformers' Trainer: next-token loss on labelled positions only.

    The prompt's labels are -100, so its logits are wasted work: on SmolLM2 the 49,152-word head
    and its softmax are about a fifth of a forward pass and most of its memory traffic. The
    forward still runs through the (possibly DDP-wrapped) model; the head is frozen under LoRA.

    In mixed precision the head runs in the model's compute dtype (accelerate hands the hidden states
    back in float32, and a bf16 head cannot multiply them), the softmax in float32.
    """

    def loss_fn(outputs: Any, labels: torch.Tensor, num_items_in_batch: torch.Tensor | int | None = None) -> torch.Tensor:
        target = labels[:, 1:]                                  # (B, T-1): position t predicts token t+1
        keep = target != IGNORE_INDEX
        hidden = outputs.hidden_states[-1][:, :-1][keep]        # (N, H), N = labelled positions
        logits = head(hidden.to(head.weight.dtype)).float()
        loss = torch.nn.functional.cross_entropy(logits, target[keep], reduction="sum")
        return loss / (num_items_in_batch if num_items_in_batch is not None else keep.sum().clamp(min=1))

    return loss_fn
