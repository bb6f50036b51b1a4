"""The conversation-type classifier at answer time: text in, label and calibrated probabilities out.

Two saved forms share one loader, told apart by `pz2_classifier.json`:
- `finetune`: a transformers `AutoModelForSequenceClassification` directory (loads anywhere);
- `setfit`: the tuned encoder (`AutoModel` directory) plus `head.safetensors`, a linear layer on
  its normalised mean-pooled embeddings.
Probabilities are softmax(logits / T) with the temperature T fitted on validation data.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pz2.data.schema import LABELS
from pz2.errors import ModelError
from pz2.evaluation.metrics import softmax
from pz2.models.sentence import mean_pool

META_FILE = "pz2_classifier.json"
HEAD_FILE = "head.safetensors"
# Characters kept before tokenising: far more than max_length tokens need, and it bounds the
# cost of a 100k-character paste to microseconds.
CHARS_PER_TOKEN_BOUND = 16


def english_coverage(text: str) -> float:
    """Share of the text's letters in the Latin script: the part the English encoder can read.

    all-MiniLM-L6-v2 learned English; Hangul or Han characters reach it as jamo or [UNK] pieces,
    and the fine-tuned head still answers with 99% confidence. That share of the input carries no
    evidence, so `predict` gives it uniform probability. Text without letters (emoji, "?!") has
    coverage 0.
    """
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return 0.0
    latin = sum(1 for c in letters if c.isascii() or unicodedata.name(c, "").startswith("LATIN"))
    return latin / len(letters)


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


@dataclass(frozen=True)
class Prediction:
    label: str
    confidence: float              # calibrated probability of `label`
    probs: dict[str, float]        # calibrated, sums to 1
    note: str | None = None        # what was done to the input (empty, truncated)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"label": self.label, "confidence": self.confidence, "probs": self.probs}
        if self.note:
            out["note"] = self.note
        return out


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


class ConversationClassifier:
    """A trained classifier directory, ready to label text."""

    def __init__(self, model: nn.Module, tokenizer: Any, meta: dict[str, Any]) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.meta = meta
        self.labels: list[str] = meta["labels"]
        self.temperature: float = meta.get("temperature", 1.0)
        self.max_length: int = meta["max_length"]

    @classmethod
    def load(cls, path: Path) -> ConversationClassifier:
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

        meta_path = path / META_FILE
        if not meta_path.is_file():
            raise ModelError(f"{path}: no trained classifier here ({META_FILE} missing); run `pz2 train classifier`")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        tokenizer = AutoTokenizer.from_pretrained(path)
        if meta["method"] == "setfit":
            model = SetFitClassifier(AutoModel.from_pretrained(path, use_safetensors=True), len(meta["labels"]))
            model.head.load_state_dict(load_file(path / HEAD_FILE))
        else:
            model = AutoModelForSequenceClassification.from_pretrained(path, use_safetensors=True)
        return cls(model, tokenizer, meta)

    def logits(self, texts: list[str], batch_size: int = 64) -> tuple[np.ndarray, list[str | None]]:
        """Uncalibrated logits (N, labels) and a note per text."""
        return batched_logits(self.model, self.tokenizer, texts, self.max_length, batch_size)

    def predict(self, texts: list[str], batch_size: int = 64) -> list[Prediction]:
        """Calibrated predictions. Text with nothing the encoder can read (empty, emoji, another
        script) gets uniform probabilities and the label general, which is never escalated;
        partly readable text is pulled toward uniform by the unreadable share."""
        coverage = [english_coverage(t) for t in texts]
        keep = [i for i, c in enumerate(coverage) if c > 0]
        logits, notes = self.logits([texts[i] for i in keep], batch_size)
        probs = softmax(logits, self.temperature)
        k = len(self.labels)
        uniform = {name: 1.0 / k for name in self.labels}
        row = {i: j for j, i in enumerate(keep)}
        result: list[Prediction] = []
        for i, text in enumerate(texts):
            if i not in row:
                note = "empty input: no signal" if not text.strip() else "no English text: no signal"
                result.append(Prediction(LABELS[2], uniform[LABELS[2]], uniform, note))
                continue
            c = coverage[i]
            p = c * probs[row[i]] + (1 - c) / k
            note = notes[row[i]]
            if c < 1:
                note = "; ".join(filter(None, [note, f"{c:.0%} of the letters are English"]))
            best = int(p.argmax())
            result.append(Prediction(self.labels[best], float(p[best]),
                                     {name: float(v) for name, v in zip(self.labels, p, strict=True)}, note))
        return result
