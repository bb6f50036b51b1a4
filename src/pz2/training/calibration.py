"""Temperature scaling (Guo et al., 2017): one scalar T fitted on validation logits.

Dividing logits by T keeps every prediction's ranking (accuracy is unchanged) and makes the
probabilities honest, which is what the router's thresholds compare against.
"""

from __future__ import annotations

import numpy as np
import torch

from pz2.evaluation.metrics import nll, softmax


def fit_temperature(logits: np.ndarray, labels: np.ndarray, max_iter: int = 200) -> float:
    """The T > 0 that minimises validation NLL; never worse than T = 1 on that data."""
    x = torch.tensor(logits, dtype=torch.float64)
    y = torch.tensor(labels, dtype=torch.long)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)  # optimise log T so T stays positive
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    t = float(log_t.exp().item())
    if not np.isfinite(t) or nll(softmax(logits, t), labels) > nll(softmax(logits), labels):
        return 1.0
    return t
