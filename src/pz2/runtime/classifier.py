"""The conversation-type classifier at answer time: text in, label and calibrated probabilities out.

The network and its two saved forms are in models/classifier_model.py. Probabilities are
softmax(logits / T) with the temperature T fitted on validation data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from pz2.data.schema import LABELS
from pz2.evaluation.metrics import softmax
from pz2.models.classifier_model import batched_logits, load_classifier
from pz2.runtime.language import english_coverage
from pz2.runtime.prediction import Prediction


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
        return cls(*load_classifier(path))

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
