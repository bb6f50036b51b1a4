"""PNG plots for reports: reliability, confusion matrix, routing curve, latency (matplotlib, no display)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from pz2.evaluation.metrics import reliability_bins
from pz2.fileio import atomic_write_bytes


def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend: no display is needed or touched."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def reliability_diagram(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str) -> None:
    """One line per named (probs, labels) pair: accuracy against confidence, with the diagonal."""
    plt = _pyplot()

    from pz2.evaluation.metrics import expected_calibration_error

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfect calibration")
    for name, (probs, labels) in curves.items():
        bins = [b for b in reliability_bins(probs, labels) if b["count"]]
        ece = expected_calibration_error(probs, labels)
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], marker="o",
                label=f"{name} (ECE {ece:.3f})")
    ax.set_xlabel("confidence (max probability)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(loc="upper left")
    _save(fig, path)


def confusion_matrix_plot(confusion: list[list[int]], labels: list[str], path: Path, title: str) -> None:
    plt = _pyplot()

    m = np.array(confusion)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, str(m[i, j]), ha="center", va="center", color="white" if m[i, j] > m.max() / 2 else "black")
    ax.set_title(title)
    _save(fig, path)


def routing_curve_plot(curves: dict[str, list[tuple[float, float]]], marks: dict[str, tuple[float, float]],
                       path: Path, title: str, ylabel: str) -> None:
    """Quality against escalation rate: one line per router (points of (rate, quality)), and marked points."""
    plt = _pyplot()

    fig, ax = plt.subplots(figsize=(6, 4.5))
    styles = {"random": {"linestyle": "--", "color": "gray"}, "oracle": {"linestyle": ":", "color": "green"}}
    for name, points in curves.items():
        ax.plot([p[0] for p in points], [p[1] for p in points], label=name, **styles.get(name, {"marker": "."}))
    for (name, (rate, quality)), marker in zip(marks.items(), itertools.cycle("oXs^"), strict=False):
        ax.scatter([rate], [quality], s=70, marker=marker, zorder=5, label=name)  # distinct shapes: points may coincide
    ax.set_xlabel("escalation rate (share of answers from a specialist)")
    ax.set_ylabel(ylabel)
    ax.set_xlim(0, 1)
    ax.set_title(title)
    ax.legend(loc="best", fontsize="small")
    _save(fig, path)


def latency_histogram(latencies_ms: dict[str, list[float]], path: Path, title: str) -> None:
    """Whole-answer latency per architecture, overlaid on shared bins."""
    plt = _pyplot()

    fig, ax = plt.subplots(figsize=(6, 4))
    every = [v for values in latencies_ms.values() for v in values]
    bins = np.linspace(0, max(every) if every else 1.0, 30)
    for name, values in latencies_ms.items():
        ax.hist(values, bins=bins, alpha=0.45, label=f"{name} (p50 {np.median(values) if values else 0:.0f} ms)")
    ax.set_xlabel("whole answer (ms)")
    ax.set_ylabel("answers")
    ax.set_title(title)
    ax.legend(loc="best", fontsize="small")
    _save(fig, path)
