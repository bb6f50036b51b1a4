"""What the classifier says about a text, as the router reads it: no torch, no model.

The router and the routing records only need these numbers; keeping them apart from the
network lets `pz2.runtime.router` load (and be tested) without torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
