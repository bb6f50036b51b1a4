"""Metrics and temperature scaling on synthetic data whose right answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from pz2.evaluation.metrics import classification_metrics, expected_calibration_error, nll, softmax
from pz2.training.calibration import fit_temperature


def test_confusion_and_per_class_scores() -> None:
    labels = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 0])
    probs = np.eye(3)[pred] * 0.9 + 0.1 / 3
    m = classification_metrics(probs, labels, ["qna", "technical", "general"])
    assert m.confusion == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m.accuracy == pytest.approx(4 / 6)
    assert m.per_class["technical"].precision == pytest.approx(2 / 3)
    assert m.per_class["technical"].recall == pytest.approx(1.0)
    assert m.macro_f1 == pytest.approx(np.mean([0.5, 0.8, 2 / 3]))


def test_macro_f1_ignores_absent_classes() -> None:
    labels = np.array([0, 0, 2])
    probs = np.eye(3)[[0, 0, 2]]
    assert classification_metrics(probs, labels, ["a", "b", "c"]).macro_f1 == pytest.approx(1.0)


def test_ece_is_zero_when_confidence_matches_accuracy_and_large_when_overconfident() -> None:
    rng = np.random.default_rng(0)
    n = 20000
    conf = rng.uniform(0.4, 1.0, n)
    correct = rng.uniform(size=n) < conf  # right exactly as often as it claims
    labels = np.where(correct, 0, 1)
    probs = np.stack([conf, 1 - conf, np.zeros(n)], axis=1)
    assert expected_calibration_error(probs, labels) < 0.02
    overconfident = np.stack([np.full(n, 0.99), np.full(n, 0.01), np.zeros(n)], axis=1)
    assert expected_calibration_error(overconfident, labels) > 0.2


def test_temperature_scaling_fixes_overconfidence_and_never_raises_nll() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 3000)
    clean = np.eye(3)[labels] * 2.0 + rng.normal(0, 1.0, (3000, 3))
    t_clean = fit_temperature(clean, labels)
    assert nll(softmax(clean, t_clean), labels) <= nll(softmax(clean), labels) + 1e-12
    overconfident = clean * 4.0  # the same model, four times too sure of itself
    t = fit_temperature(overconfident, labels)
    assert t == pytest.approx(4.0 * t_clean, rel=0.02)
    assert nll(softmax(overconfident, t), labels) < nll(softmax(overconfident), labels)
    assert expected_calibration_error(softmax(overconfident, t), labels) < 0.03
