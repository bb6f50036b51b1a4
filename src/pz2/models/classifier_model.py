"""The conversation-type classifier's network, its input encoding and its saved forms.

Two saved forms share one loader, told apart by `pz2_classifier.json`:
- `finetune`: a transformers `AutoModelForSequenceClassification` directory (loads anywhere);
- `setfit`: the tuned encoder (`AutoModel` directory) plus `head.safetensors`, a linear layer on
  its normalised mean-pooled embeddings.
Training (training/classifier.py) and answering (runtime/classifier.py) both stand on this.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pz2.data.schema import LABELS
from pz2.errors import ModelError
from pz2.models.artifacts import load_tokenizer, pretrained, read_json, require_file
from pz2.models.sentence import mean_pool

META_FILE = "pz2_classifier.json"
HEAD_FILE = "head.safetensors"
# Characters kept before tokenising: far more than max_length tokens need, and it bounds the
# cost of a 100k-character paste to microseconds.
CHARS_PER_TOKEN_BOUND = 16


class SetFitClassifier(nn.Module):
    """Encoder -> mean pooling -> L2 normalisation -> linear head."""

    def __init__(self, encoder: nn.Module, num_labels: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.config.hidden_size, num_labels)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return nn.functional.normalize(mean_pool(hidden, attention_mask), dim=-1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(input_ids, attention_mask))


def model_logits(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    return out if isinstance(out, torch.Tensor) else out.logits


class Encoded:
    """Token ids of a batch, truncated to `max_length` with the [SEP] kept, and a note per text."""

    def __init__(self, tokenizer: Any, texts: list[str], max_length: int) -> None:
        self.notes: list[str | None] = []
        clipped = []
        for text in texts:
            limit = max_length * CHARS_PER_TOKEN_BOUND
            clipped.append(text[:limit])
            self.notes.append(f"truncated: {len(text)} characters" if len(text) > limit else None)
        ids = tokenizer(clipped, add_special_tokens=True, truncation=False)["input_ids"]
        rows = []
        for i, row in enumerate(ids):
            if len(row) > max_length:
                self.notes[i] = self.notes[i] or f"truncated: {len(row)} tokens"
                self.notes[i] += f", first {max_length - 2} tokens used"
                row = row[: max_length - 1] + row[-1:]
            rows.append(row)
        self.batch = tokenizer.pad({"input_ids": rows}, return_tensors="pt")


def batched_logits(model: nn.Module, tokenizer: Any, texts: list[str], max_length: int,
                   batch_size: int = 64) -> tuple[np.ndarray, list[str | None]]:
    """Logits (N, labels) of `model` in eval mode, batch by batch, and the input note of each text."""
    out, notes = [], []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            enc = Encoded(tokenizer, texts[i : i + batch_size], max_length)
            out.append(model_logits(model, enc.batch).float().numpy())
            notes += enc.notes
    return (np.concatenate(out) if out else np.zeros((0, len(LABELS)))), notes




def load_classifier(path: Path) -> tuple[nn.Module, Any, dict[str, Any]]:
    """(network, tokenizer, meta) of a trained classifier directory."""
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoModelForSequenceClassification

    fix = "retrain it with `pz2 train classifier`"
    if not (path / META_FILE).is_file():
        raise ModelError(f"{path}: no trained classifier here ({META_FILE} missing); run `pz2 train classifier`")
    meta = read_json(path / META_FILE, fix, {"method": str, "labels": list, "max_length": int})
    if meta["method"] not in ("finetune", "setfit"):
        raise ModelError(f"{path / META_FILE}: unknown method {meta['method']!r}; {fix}")
    tokenizer = load_tokenizer(path, fix)
    if meta["method"] == "setfit":
        head = require_file(path / HEAD_FILE, fix)
        model = SetFitClassifier(pretrained(AutoModel.from_pretrained, path, "encoder", fix, use_safetensors=True),
                                 len(meta["labels"]))
        pretrained(lambda p: model.head.load_state_dict(load_file(p)), head, "head", fix)
    else:
        model = pretrained(AutoModelForSequenceClassification.from_pretrained, path, "model", fix,
                           use_safetensors=True)
    return model, tokenizer, meta
