"""Classification metrics on numpy arrays: what the classifier's report and the router rely on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

ECE_BINS = 15


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true labels."""
    return float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).mean())


def reliability_bins(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> list[dict]:
    """Per equal-width confidence bin: rows, mean confidence, accuracy."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    out = []
    for i in range(bins):
        lo, hi = edges[i], edges[i + 1]
        mask = (confidence > lo) & (confidence <= hi) if i else (confidence >= lo) & (confidence <= hi)
        n = int(mask.sum())
        out.append({"lo": float(lo), "hi": float(hi), "count": n,
                    "confidence": float(confidence[mask].mean()) if n else None,
                    "accuracy": float(correct[mask].mean()) if n else None})
    return out


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Sum over bins of |accuracy - confidence|, weighted by the bin's share of rows."""
    total = len(labels)
    return float(sum(b["count"] / total * abs(b["accuracy"] - b["confidence"])
                     for b in reliability_bins(probs, labels, bins) if b["count"]))


@dataclass(frozen=True)
class ClassMetrics:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class ClassificationMetrics:
    accuracy: float
    macro_f1: float
    ece: float
    nll: float
    per_class: dict[str, ClassMetrics]
    confusion: list[list[int]]   # rows = true label, columns = predicted label
    labels: list[str]
    rows: int

    def to_dict(self) -> dict:
        return asdict(self)


def classification_metrics(probs: np.ndarray, labels: np.ndarray, names: list[str] | tuple[str, ...]) -> ClassificationMetrics:
    """Macro-F1 averages over the classes present in the data, so a test set without one class
    is not punished for it (the class's F1 would be undefined)."""
    pred = probs.argmax(axis=1)
    k = len(names)
    confusion = np.zeros((k, k), dtype=int)
    np.add.at(confusion, (labels, pred), 1)
    per_class = {}
    f1s = []
    for i, name in enumerate(names):
        tp, support, predicted = confusion[i, i], confusion[i].sum(), confusion[:, i].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = ClassMetrics(float(precision), float(recall), float(f1), int(support))
        if support:
            f1s.append(f1)
    return ClassificationMetrics(
        accuracy=float((pred == labels).mean()) if len(labels) else 0.0,
        macro_f1=float(np.mean(f1s)) if f1s else 0.0,
        ece=expected_calibration_error(probs, labels) if len(labels) else 0.0,
        nll=nll(probs, labels) if len(labels) else 0.0,
        per_class=per_class,
        confusion=confusion.tolist(),
        labels=list(names),
        rows=int(len(labels)),
    )


def binary_ece(p: np.ndarray, y: np.ndarray) -> float:
    """ECE of probabilities `p` that outcomes `y` (0/1) are 1: the two-class form of the above."""
    return expected_calibration_error(np.stack([1 - p, p], axis=1), np.asarray(y).astype(int))


def bootstrap_interval(statistic: Callable[..., float], *arrays: np.ndarray, resamples: int = 1000,
                       seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of `statistic(*arrays)`, resampling rows with replacement."""
    n = len(arrays[0])
    rng = np.random.default_rng(seed)
    values = [statistic(*(a[idx] for a in arrays)) for idx in rng.integers(0, n, size=(resamples, n))]
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def percentiles(values: list[float], qs: tuple[int, ...] = (50, 95)) -> dict[str, float | None]:
    """{"p50": …, "p95": …} of the values (None when there are none)."""
    if not values:
        return {f"p{q}": None for q in qs}
    return {f"p{q}": float(v) for q, v in zip(qs, np.percentile(values, qs), strict=True)}
