"""Rows -> chat examples -> token ids with masked prompts, optionally packed, and their collator."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pz2.config import ModelConfig, RaftConfig, ValidationConfig
from pz2.data.conversation import has_messages, split_conversation
from pz2.data.loading import load_rows
from pz2.data.real import split_of
from pz2.data.schema import SPECIALIST_CATEGORIES, FileKind, file_info, parse_unified
from pz2.errors import DatasetError, UsageError
from pz2.fileio import atomic_write_jsonl, sha256_file
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


def example_of(row: dict[str, Any], system_prompt: str) -> ChatExample:
    """A validated row as a chat example. A row's own system prompt (a conversation's system message, or the
    one written into a unified prompt) is kept, `system_prompt` used only without one; a RAFT row's last user
    turn quotes its passages exactly as the runtime's grounded prompt does."""
    if has_messages(row):
        c = split_conversation(row["messages"])
        system, user, answer, history = c.system, c.user, c.answer, tuple(c.history)
    else:
        (system, user), answer, history = parse_unified(row["input_text"]), row["target_text"], ()
    passages = [Passage(n, p["path"], p["title"], p["text"]) for n, p in enumerate(row.get("passages", []), start=1)]
    return ChatExample(system or system_prompt, grounded_message(user, passages), answer, history)


def file_kind(path: Path) -> FileKind:
    """How a training file's rows are read: by its name, else as dialogue rows (any model trains on those)."""
    info = file_info(path)
    if info is not None and info.kind is FileKind.CLASSIFICATION:
        raise UsageError(f"{path}: a classification file holds no answers to train a chat model on; "
                         "train the classifier with it (`pz2 train classifier`)")
    return info.kind if info else FileKind.DIALOGUE


def load_examples(path: Path, kind: str, system_prompt: str) -> list[ChatExample]:
    """A model's validated data file (`data_files`) as chat examples."""
    return [example_of(r, system_prompt) for r in load_rows(path, FileKind.UNIFIED if kind == "unified"
                                                            else FileKind.DIALOGUE)]


@dataclass
class TrainingRows:
    """The rows one adapter trains and is validated on, and where each came from: per file its hash, the
    rows it gave and, for training files, its share of the training rows (the manifest's `data`)."""

    train: list[dict[str, Any]]
    validation: list[dict[str, Any]]
    files: dict[str, dict[str, Any]]


HOLDOUT = 0.1   # validation share held out of a user's file that comes without a *_validation file beside it


def training_rows(ws: Workspace, kind: str, data: Sequence[Path] = (), generated_share: float = 0.0,
                  seed: int = 0) -> TrainingRows:
    """The generated files of the model (`data_files`), or the user's `data` files mixed with
    `generated_share` of generated rows (the share of the training rows they make up).

    A user's file validates on the `*_validation.jsonl` beside its `*_train.jsonl`, else on a tenth of
    its rows held out by a hash of each row (the same rows on every run).
    """
    generated_train, generated_val = data_files(ws, kind)
    if not data:
        train = load_rows(generated_train, file_kind(generated_train))
        validation = load_rows(generated_val, file_kind(generated_val))
        return TrainingRows(train, validation, {
            str(generated_train): _file_record(generated_train, len(train), 1.0),
            str(generated_val): _file_record(generated_val, len(validation))})
    train, validation, files, parts = [], [], {}, []
    for path in data:
        rows = load_rows(path, file_kind(path))
        sibling = path.with_name(path.name.replace("_train", "_validation")) if "_train" in path.name else None
        if sibling is not None and sibling.is_file() and sibling not in data:
            held = load_rows(sibling, file_kind(sibling))
            files[str(sibling)] = _file_record(sibling, len(held))
        else:
            held = [r for r in rows if split_of(json.dumps(r, sort_keys=True), HOLDOUT, 0.0) == "validation"]
            rows = [r for r in rows if split_of(json.dumps(r, sort_keys=True), HOLDOUT, 0.0) == "train"]
            logger.info("%s: %d rows held out for validation (no %s beside it)", path, len(held),
                        sibling.name if sibling else "*_validation.jsonl")
        train += rows
        validation += held
        parts.append((path, len(rows)))
    if generated_share:
        pool = load_rows(generated_train, file_kind(generated_train))
        wanted = round(generated_share / (1 - generated_share) * len(train))
        mixed = random.Random(seed).sample(pool, min(wanted, len(pool)))
        if len(mixed) < wanted:
            logger.warning("--mix generated:%s asks for %d generated rows; %s has %d", generated_share, wanted,
                           generated_train, len(pool))
        train += mixed
        parts.append((generated_train, len(mixed)))
    for path, n in parts:
        files[str(path)] = _file_record(path, n, n / len(train))
    return TrainingRows(train, validation, files)


def _file_record(path: Path, rows: int, share: float | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {"sha256": sha256_file(path), "rows": rows}
    if share is not None:
        record["share"] = round(share, 4)
    return record


def parse_mix(specs: Sequence[str]) -> float:
    """The share of generated rows from `--mix generated:0.3` (0 when not given)."""
    share = 0.0
    for spec in specs:
        name, _, value = spec.partition(":")
        try:
            share = float(value)
        except ValueError:
            share = -1.0
        if name != "generated" or not 0 <= share < 1:
            raise UsageError(f"--mix {spec}: expected generated:SHARE with SHARE in [0, 1), the share of the "
                             "training rows taken from the generated files")
    return share


def raft_rows_for(ws: Workspace, kind: str, rows: TrainingRows, raft: RaftConfig, model_cfg: ModelConfig,
                  tokenizer: Any, validation: ValidationConfig) -> TrainingRows | None:
    """A specialist's rows with retrieved passages (`knowledge/raft.py`), written to datasets/raft/ and
    validated there; None (train on the plain rows) when RAFT is off or there is no knowledge base yet."""
    if not raft.enabled:
        return None
    if not (ws.knowledge / MANIFEST).is_file():
        logger.warning("%s: no knowledge base, so the %s specialist trains without passages (`pz2 kb build`, "
                       "then train again)", ws.knowledge, kind)
        return None
    from pz2.data.validate import Severity, check_file

    index = KnowledgeIndex.load(ws.knowledge)
    encoder = SentenceEncoder.for_knowledge(model_cfg)
    grounded = {}
    for split, part in (("train", rows.train), ("validation", rows.validation)):
        out = raft_rows(part, kind, index, encoder, tokenizer, raft, model_cfg.runtime.retrieval)
        if kind == "technical" and split == "train":
            out += sheet_rows(index, encoder, tokenizer, raft, model_cfg.runtime.retrieval)
        path = raft_file(ws.datasets, kind, split)
        atomic_write_jsonl(path, out)
        _, issues, _ = check_file(path, FileKind.DIALOGUE, validation)
        errors = [i for i in issues if i.severity is Severity.ERROR]
        if errors:
            raise DatasetError(path, errors[0].line, errors[0].message())
        grounded[split] = out
    logger.info("%s: RAFT rows with %d passages each in %s", kind, getattr(raft.passages, kind), ws.datasets / "raft")
    return TrainingRows(grounded["train"], grounded["validation"], rows.files)


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
