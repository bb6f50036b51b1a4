"""Confidence: a calibrated P(the unified answer is good), from signals of its own generation and of its
check against the knowledge base (runtime/verification.py).

"Good" means correct where that can be told: an answer to a question with a short reference (a fact) is
good when it contains it; otherwise when its SemScore against the reference reaches `good_semscore`
(evaluation/answer_quality.is_good). The rows are generated validation questions and human-written
ones (runtime/confidence_fit.py), so the probabilities hold where users ask. A logistic regression on
the features below learns P(good); logistic regression is calibrated by construction on the data it is fitted to, and
the reported ECE comes from out-of-fold predictions (k-fold), so it is the error a new question
would see. "confidence < 0.70" then means: fewer than 7 in 10 answers like this one are good.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pz2.data.schema import LABELS
from pz2.errors import ModelError
from pz2.fileio import atomic_write_json
from pz2.models.artifacts import read_json
from pz2.runtime.engine import Generation
from pz2.runtime.prediction import Prediction
from pz2.runtime.verification import CHECK_FEATURES, UNCHECKED, Check

CONFIDENCE_FILE = "confidence.json"
# the model on the generation's signals alone, fitted beside the checked one on the same answers: what
# `pz2 eval compare` shows the check's gain against
GENERATION_ONLY_FILE = "confidence_generation_only.json"
CLIP = 3.0
GENERATION_FEATURES = ("mean_logprob", "min_logprob", "mean_entropy", "max_entropy", "length", "finished",
                       "category_probability", *(f"is_{label}" for label in LABELS))
FEATURES = (*GENERATION_FEATURES, *CHECK_FEATURES)


def features(gen: Generation, prediction: Prediction, max_new_tokens: int, check: Check | None) -> np.ndarray:
    """The signals of one unified answer, in FEATURES order; `check` None: no knowledge base was asked."""
    lp = np.array(gen.logprobs or [0.0])  # empty only when max_new_tokens is 0
    ent = np.array(gen.entropies or [0.0])
    onehot = [float(prediction.label == label) for label in LABELS]
    return np.array([lp.mean(), lp.min(), ent.mean(), ent.max(), len(gen.token_ids) / max_new_tokens,
                     float(gen.finished), prediction.confidence, *onehot, *(check.features() if check else UNCHECKED)])


def _fit_logistic(x: np.ndarray, y: np.ndarray, l2: float, weights: np.ndarray | None = None,
                  iters: int = 50) -> tuple[np.ndarray, float]:
    """Newton's method on the L2-penalised, row-weighted log-likelihood (bias not penalised)."""
    n, d = x.shape
    weights = np.ones(n) if weights is None else weights
    xb = np.hstack([x, np.ones((n, 1))])
    w = np.zeros(d + 1)
    penalty = np.full(d + 1, l2)
    penalty[-1] = 0.0
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(xb @ w, -30, 30)))
        grad = xb.T @ (weights * (p - y)) + penalty * w
        hess = (xb * (weights * p * (1 - p))[:, None]).T @ xb + np.diag(penalty) + 1e-9 * np.eye(d + 1)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w[:-1], float(w[-1])


def threshold_for(curve: list[float], budget: float) -> float:
    """The threshold that escalates `budget` of the turns `curve` stands for (RouteLLM's calibration):
    `curve` is the sorted P(good) of validation answers the router could escalate, and a turn escalates
    when its P(good) is below the threshold, so the threshold is the value the first `budget` of them
    stay under. Ties escalate together: the share reached is at most the budget."""
    if not curve:
        raise ModelError("the confidence model has no validation curve; refit with `pz2 train confidence`")
    k = round(budget * len(curve))
    return float(curve[k]) if k < len(curve) else float(np.nextafter(curve[-1], np.inf))


@dataclass
class ConfidenceModel:
    columns: list[str]       # the FEATURES it reads: all of them, or the generation's alone
    weights: list[float]
    bias: float
    mean: list[float]
    scale: list[float]
    max_new_tokens: int
    good: dict               # what "good" meant in fitting (answer_quality.is_good's settings)
    metrics: dict
    curve: list[float]       # out-of-fold P(good) of the escalatable validation answers, sorted

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, columns: tuple[str, ...], max_new_tokens: int, good: dict,
            eligible: np.ndarray, l2: float = 1.0, folds: int = 5, seed: int = 0,
            groups: np.ndarray | None = None, weights: np.ndarray | None = None) -> tuple[ConfidenceModel, np.ndarray]:
        """Fit on all rows (x in FEATURES order, `columns` of it used); report calibration from k-fold
        out-of-fold predictions, which it returns too; `eligible` marks the rows the router could escalate
        (not general): their out-of-fold P(good) is the curve an escalation budget reads. Rows of one
        `groups` value (views of one answer) share a fold; `weights` (default 1) weigh rows in fitting (a
        person's rating against a fit row)."""
        cols = [FEATURES.index(c) for c in columns]
        oof = cls.out_of_fold(x[:, cols], y, l2, folds, seed, groups, weights)
        model = cls._fitted(x[:, cols], y, l2, list(columns), max_new_tokens, good, weights)
        model.metrics = binary_metrics(oof, y) | {"folds": folds}
        model.curve = sorted(round(float(p), 6) for p in oof[eligible])
        return model, oof

    @classmethod
    def out_of_fold(cls, x: np.ndarray, y: np.ndarray, l2: float = 1.0, folds: int = 5, seed: int = 0,
                    groups: np.ndarray | None = None, weights: np.ndarray | None = None) -> np.ndarray:
        """P(good) of each row from a model that saw neither it nor another view of its answer: what a new
        question would get."""
        if len(y) < 2 * folds or y.min() == y.max():
            raise ModelError(f"confidence needs both good and bad answers in at least {2 * folds} rows "
                             f"(got {len(y)} rows, {int(y.sum())} good); change `good_semscore` or use more rows")
        groups = np.arange(len(y)) if groups is None else groups
        weights = np.ones(len(y)) if weights is None else weights
        names = np.unique(groups)
        fold_of = dict(zip(names[np.random.default_rng(seed).permutation(len(names))].tolist(),
                           np.arange(len(names)) % folds, strict=True))
        fold = np.array([fold_of[g] for g in groups.tolist()])
        oof = np.zeros(len(y))
        for k in range(folds):
            test, train = fold == k, fold != k
            oof[test] = cls._fitted(x[train], y[train], l2, weights=weights[train])._predict(x[test])
        return oof

    @classmethod
    def _fitted(cls, x: np.ndarray, y: np.ndarray, l2: float, columns: list[str] | None = None,
                max_new_tokens: int = 0, good: dict | None = None, weights: np.ndarray | None = None) -> ConfidenceModel:
        mean, scale = x.mean(axis=0), x.std(axis=0)
        scale[scale == 0] = 1.0
        w, b = _fit_logistic(np.clip((x - mean) / scale, -CLIP, CLIP), y, l2, weights)
        return cls(columns or [], w.tolist(), b, mean.tolist(), scale.tolist(), max_new_tokens, good or {}, {}, [])

    def _predict(self, x: np.ndarray) -> np.ndarray:
        # standardized features are clipped: a value far outside what fitting saw (a classifier
        # probability of 0.5 where fitting saw 0.95-1.0) must not extrapolate to certainty
        z = np.clip((x - np.array(self.mean)) / np.array(self.scale), -CLIP, CLIP) @ np.array(self.weights) + self.bias
        return 1 / (1 + np.exp(-np.clip(z, -30, 30)))

    def predict_features(self, x: np.ndarray) -> np.ndarray:
        """P(good) of rows of FEATURES vectors."""
        return self._predict(x[:, [FEATURES.index(c) for c in self.columns]])

    @property
    def checks(self) -> bool:
        """It reads the knowledge base's check of the answer."""
        return "checked" in self.columns

    def judge(self, gen: Generation, prediction: Prediction, check: Check | None = None) -> tuple[float, dict[str, float]]:
        """P(good) of one unified answer, and the features it came from, by name: the decision record keeps
        them, so a person's rating of the answer becomes a row to refit on (`pz2 train confidence --feedback`)."""
        x = features(gen, prediction, self.max_new_tokens, check)
        return float(self.predict_features(x[None])[0]), {name: round(float(v), 6) for name, v in zip(FEATURES, x, strict=True)}

    def threshold(self, budget: float) -> float:
        return threshold_for(self.curve, budget)

    def save(self, path: Path) -> None:
        atomic_write_json(path, {"features": list(FEATURES), **asdict(self)})

    @classmethod
    def load(cls, path: Path) -> ConfidenceModel | None:
        """The fitted model, or None when it has not been fitted yet."""
        if not path.exists():
            return None
        fix = "refit with `pz2 train confidence`"
        raw = read_json(path, fix)
        if raw.pop("features", None) != list(FEATURES):
            raise ModelError(f"{path}: fitted on other features; {fix}")
        try:
            return cls(**raw)
        except TypeError as e:
            raise ModelError(f"{path}: not a confidence model ({e}); {fix}") from None


def binary_metrics(p: np.ndarray, y: np.ndarray, resamples: int = 1000, seed: int = 0) -> dict:
    """ECE (15 bins) with its 95 % bootstrap interval, Brier score, AUC and base rate of P(good)
    predictions against outcomes. The interval says how much of an ECE is the sample's luck: on
    a few hundred answers, a perfectly calibrated model still shows an ECE of a few points."""
    from pz2.evaluation.metrics import binary_ece, bootstrap_interval

    pos, neg = p[y == 1], p[y == 0]
    auc = float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()) if len(pos) and len(neg) else None
    below = p < 0.7
    return {"rows": len(y), "good_rate": float(y.mean()), "ece": binary_ece(p, y),
            "ece_ci95": list(bootstrap_interval(binary_ece, p, y, resamples=resamples, seed=seed)),
            "brier": float(((p - y) ** 2).mean()), "auc": auc,
            "good_rate_when_below_0.70": float(y[below].mean()) if below.any() else None,
            "good_rate_when_at_least_0.70": float(y[~below].mean()) if (~below).any() else None}
