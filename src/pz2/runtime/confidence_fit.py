"""Fit the confidence model: answer validation questions with the unified model, score, fit.

Each answer is labelled good when its ROUGE-L against the reference reaches `good_rouge_l`;
the features are the ones the assistant computes live (runtime/confidence.py), from the engine
and classifier the caller hands in (the ones the router will use), so the fitted probabilities
describe the answers the assistant will actually give. It lives beside the features it fits:
it needs the runtime's engine, and nothing of the runtime needs it.
"""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path

import numpy as np
from rich.progress import Progress

from pz2.config import ConfidenceFitConfig, ModelConfig
from pz2.data.loading import reference_pairs
from pz2.evaluation.plots import reliability_diagram
from pz2.evaluation.text_metrics import rouge_l
from pz2.fileio import atomic_write_jsonl
from pz2.runtime.classifier import ConversationClassifier
from pz2.runtime.confidence import CONFIDENCE_FILE, ConfidenceModel, features
from pz2.runtime.engine import Engine
from pz2.workspace import Workspace

logger = logging.getLogger(__name__)


def collect(engine: Engine, classifier: ConversationClassifier, adapter: str | None,
            pairs: list[tuple[str, str, str]], good_rouge_l: float, max_new_tokens: int,
            show_progress: bool = True) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """(features, good labels, rows for the log) of the unified answers to `pairs`."""
    predictions = classifier.predict([u for _, u, _ in pairs])
    xs, ys, rows = [], [], []
    with Progress(disable=not show_progress, transient=True) as bar:
        task = bar.add_task("answering validation questions", total=len(pairs))
        for (_, user, reference), prediction in zip(pairs, predictions, strict=True):
            gen = engine.generate(user, adapter, max_new_tokens)
            score = rouge_l(gen.text, reference)
            xs.append(features(gen, prediction, max_new_tokens))
            ys.append(float(score >= good_rouge_l))
            rows.append({"input_text": user, "answer": gen.text, "reference": reference, "rouge_l": round(score, 4),
                         "good": bool(ys[-1]), "category": prediction.label})
            bar.advance(task)
    return np.array(xs), np.array(ys), rows


def fit_confidence(ws: Workspace, engine: Engine, classifier: ConversationClassifier, model_cfg: ModelConfig,
                   cfg: ConfidenceFitConfig, show_progress: bool = True) -> tuple[ConfidenceModel, Path]:
    """Fit on up to `cfg.limit` rows of unified_validation.jsonl, answered by `engine`'s unified model;
    writes confidence.json beside the unified adapter."""
    pairs = reference_pairs(ws.datasets / "unified_validation.jsonl", model_cfg.system_prompt, None)
    if cfg.limit is not None and cfg.limit < len(pairs):
        pairs = random.Random(cfg.seed).sample(pairs, cfg.limit)
    max_new = model_cfg.runtime.engine.max_new_tokens
    start = time.perf_counter()
    x, y, rows = collect(engine, classifier, engine.unified, pairs, cfg.good_rouge_l, max_new, show_progress)
    model = ConfidenceModel.fit(x, y, max_new, cfg.good_rouge_l, l2=cfg.l2, folds=cfg.folds, seed=cfg.seed)
    model.metrics |= {"engine": engine.name, "served": engine.served.id if engine.served else "?", "adapter": engine.unified,
                      "seconds": round(time.perf_counter() - start, 1)}
    out = ws.unified_model / CONFIDENCE_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    atomic_write_jsonl(out.with_name("confidence_rows.jsonl"), rows)
    p = ConfidenceModel.out_of_fold(x, y, max_new, cfg.good_rouge_l, cfg.l2, cfg.folds, cfg.seed)
    reliability_diagram({"P(good), out of fold": (np.stack([1 - p, p], axis=1), y.astype(int))},
                        out.with_name("confidence_reliability.png"), "Confidence of the unified answer")
    logger.info("confidence fitted on %d answers (%.0f%% good): out-of-fold ECE %.3f", len(y), 100 * y.mean(), model.metrics["ece"])
    return model, out
