"""`pz2 eval classifier`: metrics, a markdown report and two PNGs for any labelled JSONL file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pz2.data.loading import EVALUATION_TOLERATES, load_rows
from pz2.data.schema import FileKind
from pz2.evaluation.metrics import ClassificationMetrics, classification_metrics
from pz2.evaluation.plots import confusion_matrix_plot, reliability_diagram
from pz2.fileio import atomic_write_json, atomic_write_text, sha256_file
from pz2.runtime.classifier import ConversationClassifier

MAX_ERRORS_LISTED = 25


@dataclass(frozen=True)
class ClassifierEvaluation:
    metrics: ClassificationMetrics
    out_dir: Path
    files: dict[str, Path]


def evaluate_classifier(clf: ConversationClassifier, data: Path, out_dir: Path) -> ClassifierEvaluation:
    """Label every row of `data`, compare with its labels, write metrics.json, report.md and the plots."""
    rows = load_rows(data, FileKind.CLASSIFICATION, tolerate=EVALUATION_TOLERATES)
    texts = [r["text"] for r in rows]
    labels = np.array([r["label"] for r in rows], dtype=np.int64)
    predictions = clf.predict(texts)
    probs = np.array([[p.probs[name] for name in clf.labels] for p in predictions])
    metrics = classification_metrics(probs, labels, clf.labels)
    files = {name: out_dir / name for name in ("metrics.json", "report.md", "confusion_matrix.png", "reliability.png")}
    atomic_write_json(files["metrics.json"], {
        "data": str(data), "data_sha256": sha256_file(data), "temperature": clf.temperature,
        "method": clf.meta.get("method"), **metrics.to_dict(),
    })
    confusion_matrix_plot(metrics.confusion, metrics.labels, files["confusion_matrix.png"], f"{data.name}")
    reliability_diagram({"calibrated": (probs, labels)}, files["reliability.png"], f"{data.name}: reliability")
    errors = [(t, clf.labels[y], p) for t, y, p in zip(texts, labels, predictions, strict=True) if p.label != clf.labels[y]]
    atomic_write_text(files["report.md"], _markdown(data, metrics, errors))
    return ClassifierEvaluation(metrics, out_dir, files)


def _markdown(data: Path, m: ClassificationMetrics, errors: list) -> str:
    lines = [
        f"# Classifier evaluation: `{data.name}`", "",
        f"{m.rows} rows. Probabilities are calibrated (temperature scaling on the validation split).", "",
        "| metric | value |", "|---|---|",
        f"| accuracy | {m.accuracy:.4f} |", f"| macro-F1 | {m.macro_f1:.4f} |",
        f"| ECE (15 bins) | {m.ece:.4f} |", f"| NLL | {m.nll:.4f} |", "",
        "| class | precision | recall | F1 | support |", "|---|---|---|---|---|",
        *[f"| {name} | {c.precision:.4f} | {c.recall:.4f} | {c.f1:.4f} | {c.support} |" for name, c in m.per_class.items()],
        "", "Confusion matrix (rows: true, columns: predicted)", "",
        "| | " + " | ".join(m.labels) + " |", "|---" * (len(m.labels) + 1) + "|",
        *[f"| {name} | " + " | ".join(str(v) for v in row) + " |" for name, row in zip(m.labels, m.confusion, strict=True)],
        "", "![confusion matrix](confusion_matrix.png) ![reliability](reliability.png)", "",
        f"## Misclassified ({len(errors)}, first {min(len(errors), MAX_ERRORS_LISTED)})", "",
        "| text | true | predicted | confidence |", "|---|---|---|---|",
        *[f"| {t[:120].replace('|', '/')} | {true} | {p.label} | {p.confidence:.2f} |"
          for t, true, p in errors[:MAX_ERRORS_LISTED]],
    ]
    return "\n".join(lines) + "\n"
