"""`pz2 eval compare`: the seed's hybrid / separated / unified table, measured, and the router's curve.

One process, one engine (the configured default), the same held-out rows for everything:
1. the three architectures answer every row for real (architectures.py), timed;
2. the base model answers every row, and each specialist the rows of its own category, so the
   models can be compared side by side (answers the architectures already gave are reused:
   decoding is greedy, the same model and prompt give the same answer);
3. every answer is scored (answer_quality.py), every model's loss on the references measured;
4. the routing curve sweeps the confidence threshold over the rows the router can escalate
   (those the classifier does not call general), from the unified answers, their confidence and
   the specialist answers of step 1 (routing_curve.py);
5. metrics.json (schema: compare_metrics.schema.json), answers.jsonl, report.md and four PNGs
   are written to one folder, atomically.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import Progress

from pz2.config import EvaluationConfig, ModelConfig
from pz2.data.schema import LABEL_IDS, LABELS
from pz2.errors import ModelError
from pz2.evaluation import answer_quality as aq
from pz2.evaluation.answer_quality import is_good
from pz2.evaluation import plots
from pz2.evaluation.compare_report import fmt, markdown
from pz2.evaluation.architectures import (
    ARCHITECTURES,
    RUN_ORDER,
    UNIFIED,
    Answer,
    ArchitectureRun,
    ask_model,
    run_architecture,
)
from pz2.evaluation.eval_set import EvalRow, default_files, load_eval_rows
from pz2.evaluation.metrics import bootstrap_interval, classification_metrics, percentiles
from pz2.evaluation.model_loss import reference_losses, summarize_losses
from pz2.evaluation.routing_curve import RoutingCurve, oracle_curve, pgr, point_at, threshold_curve, without_ratios
from pz2.fileio import atomic_directory, atomic_write_json, atomic_write_jsonl, atomic_write_text, sha256_file
from pz2.models.chat import ChatExample
from pz2.models.loading import adapter_dir
from pz2.models.sentence import SentenceEncoder
from pz2.runtime.assistant import Assistant
from pz2.runtime.confidence import GENERATION_ONLY_FILE, ConfidenceModel, binary_metrics
from pz2.runtime.confidence_fit import GENERATED, HUMAN
from pz2.runtime.ending import ends_mid_sentence
from pz2.runtime.router import GENERAL, SPECIALISTS
from pz2.workspace import Workspace

logger = logging.getLogger(__name__)

SCHEMA_FILE = "compare_metrics.schema.json"
# the confidences compared: the router's (generation + the knowledge base's check) and the generation's alone
ROUTER, GENERATION_ONLY = "confidence", "generation_only"
ALL_ROWS = "all"
MODELS: tuple[str, ...] = ("base", UNIFIED, *SPECIALISTS)
FILES = ("metrics.json", "answers.jsonl", "report.md", "routing_curve.png", "latency.png",
         "reliability.png", "confusion_matrix.png")
# The seed's table (하이브리드 / 기존 분리형 / 기존 통합형), stars as the seed gives them.
SEED_STARS: dict[str, dict[str, int]] = {
    "speed": {"hybrid": 5, "separated": 3, "unified": 5},
    "memory": {"hybrid": 4, "separated": 2, "unified": 5},
    "expertise": {"hybrid": 5, "separated": 5, "unified": 3},
    "complexity": {"hybrid": 3, "separated": 2, "unified": 5},
    "scalability": {"hybrid": 5, "separated": 5, "unified": 3},
    "resources": {"hybrid": 4, "separated": 2, "unified": 5},
}


def schema() -> dict:
    """The JSON schema metrics.json follows (shipped with the package)."""
    return json.loads(resources.files("pz2.evaluation").joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Comparison:
    metrics: dict[str, Any]
    out_dir: Path
    files: dict[str, Path]


def _model_paths(ws: Workspace) -> dict[str, Path | None]:
    """The trained models the comparison needs; a missing one is an error that says how to train it."""
    paths: dict[str, Path | None] = {"base": None, UNIFIED: ws.unified_model}
    missing = [] if adapter_dir(ws.unified_model) else ["the unified model (`pz2 train unified`)"]
    for kind in SPECIALISTS:
        paths[kind] = ws.specialist(kind)
        if not ws.specialist(kind).exists():
            missing.append(f"the {kind} specialist (`pz2 train specialist --type {kind}`)")
    if missing:
        raise ModelError(f"{ws.models}: comparing needs {', '.join(missing)}")
    return paths


# ---------------------------------------------------------------- answering


def _model_answers(assistant: Assistant, rows: list[EvalRow], categories: list[str],
                   runs: dict[str, ArchitectureRun], advance: Any) -> dict[str, dict[int, str]]:
    """Row index -> answer, per model: the base on every row, the unified model on every row, each
    specialist on the rows of its category (reusing the separated run's answers where it asked it)."""
    out: dict[str, dict[int, str]] = {UNIFIED: {i: a.text for i, a in enumerate(runs[UNIFIED].answers)}}
    out["base"] = {}
    for i, row in enumerate(rows):
        out["base"][i] = assistant.engine.stream(row.question, None, history=row.history, system=row.system).text
        advance()
    for kind in SPECIALISTS:
        out[kind] = {}
        for i, (row, category) in enumerate(zip(rows, categories, strict=True)):
            if category != kind:
                continue
            given = runs["separated"].answers[i]
            out[kind][i] = given.text if given.model == kind else ask_model(assistant, row, kind, kind).answer
            advance()
    return out


# ---------------------------------------------------------------- measuring


def _quality(scores: list[dict], categories: list[str], idx: list[int] | None = None) -> dict[str, dict]:
    idx = list(range(len(scores))) if idx is None else idx
    return aq.by_category([scores[i] for i in idx], [categories[i] for i in idx])


def _latency(answers: list[Answer], idx: list[int]) -> dict[str, dict]:
    return {"first_token_ms": percentiles([answers[i].first_token_ms for i in idx if answers[i].first_token_ms is not None]),
            "total_ms": percentiles([answers[i].total_ms for i in idx])}


def _architecture_metrics(run: ArchitectureRun, scores: list[dict], categories: list[str]) -> dict[str, Any]:
    n = len(run.answers)
    groups = {c: [i for i in range(n) if categories[i] == c] for c in sorted(set(categories))}
    escalated = [a.escalated for a in run.answers]
    return {
        "quality": _quality(scores, categories),
        "latency": _latency(run.answers, list(range(n))),
        "latency_by_category": {c: _latency(run.answers, idx) for c, idx in groups.items()},
        "escalation_rate": float(np.mean(escalated)) if n else 0.0,
        "escalation_rate_by_category": {c: float(np.mean([escalated[i] for i in idx])) for c, idx in groups.items()},
        "specialist_loads": run.specialist_loads,
        "peak_rss_mb": round(run.peak_rss_mb, 1),
        "specialists_mb": round(run.specialists_mb, 1),
        "cpu_s_per_answer": run.cpu_s / n if n else 0.0,
        "wall_s": round(run.wall_s, 2),
        # answers that stop inside a sentence because they reached their token budget (runtime/ending.py)
        "cut_mid_sentence": float(np.mean([a.finish_reason == "length" and ends_mid_sentence(a.text) for a in run.answers]))
        if n else 0.0,
        "answered_by": dict(Counter(a.model for a in run.answers)),
        "reasons": dict(Counter(a.reason for a in run.answers if a.reason)),
    }


def _curve_dict(curve: RoutingCurve, max_points: int = 201) -> dict[str, Any]:
    """The curve's measures, with its points thinned to at most `max_points` for the JSON."""
    d = curve.to_dict()
    points = d.pop("points")
    if len(points) > max_points:
        keep = np.unique(np.linspace(0, len(points) - 1, max_points).round().astype(int))
        points = [points[i] for i in keep]
    return d | {"curve": points}


def _significant(curve: RoutingCurve, weak: np.ndarray, strong: np.ndarray, ecfg: EvaluationConfig) -> RoutingCurve:
    """PGR divides by the specialists' gain; when its 95 % paired bootstrap interval reaches zero the
    gain may be noise, and so would every ratio be (0.001 of gain turns any wobble into +-30 % PGR)."""
    if curve.apgr is None or len(weak) < 2:
        return curve
    lo, hi = bootstrap_interval(lambda d: float(d.mean()), strong - weak, resamples=ecfg.bootstrap, seed=ecfg.seed)
    if lo > 0:
        return curve
    return without_ratios(curve, f"the specialists are not reliably better here: gain {curve.q_strong - curve.q_weak:+.4f} "
                          f"(95 % interval {lo:+.4f} to {hi:+.4f}); PGR, APGR and CPT would measure noise")


def _router_curves(metric: str, runs: dict[str, ArchitectureRun], scores: dict[str, list[dict]], labels: list[str],
                   origins: list[str], routers: dict[str, list[float | None]],
                   ecfg: EvaluationConfig) -> tuple[dict[str, Any], dict[str, RoutingCurve]]:
    """Each confidence's routing curve on the same escalatable rows, on all of them and on the generated and the
    human-written ones apart: the check's gain over the generation's signals alone, where users ask. Also the
    curves on all rows, to be drawn."""
    out: dict[str, Any] = {}
    drawn: dict[str, RoutingCurve] = {}
    for name, conf in routers.items():
        out[name] = {}
        for origin in (ALL_ROWS, GENERATED, HUMAN):
            idx = [i for i, label in enumerate(labels) if label in SPECIALISTS and origin in (ALL_ROWS, origins[i])]
            if not idx or any(conf[i] is None for i in idx):
                continue
            weak = np.array([scores["unified"][i][metric] for i in idx])
            strong = np.array([scores["separated"][i][metric] for i in idx])
            curve = _significant(threshold_curve(weak, strong, np.array([conf[i] for i in idx])), weak, strong, ecfg)
            out[name][origin] = _curve_dict(curve, max_points=51)
            if origin == ALL_ROWS:
                drawn[name] = curve
    return out, drawn


def _router(cfg: ModelConfig, metric: str, runs: dict[str, ArchitectureRun], scores: dict[str, list[dict]],
            labels: list[str], ecfg: EvaluationConfig, threshold: float) -> tuple[dict[str, Any], dict[str, RoutingCurve]]:
    """The confidence router's curve on the rows it can escalate, overall and per specialist; `threshold`: the
    one in force (the configured one, or an escalation budget's)."""
    unified = runs[UNIFIED].answers
    rows = [i for i, label in enumerate(labels) if label in SPECIALISTS]
    out: dict[str, Any] = {"metric": metric, "threshold": threshold, "rows": len(rows),
                           "escalation_budget": cfg.runtime.router.escalation_budget,
                           "scope": "rows the classifier labels qna or technical (general never escalates)"}
    if any(unified[i].confidence is None for i in rows):
        note = "no confidence model (`pz2 train confidence`): the router cannot be swept"
        return out | {"apgr": None, "cpt50": None, "cpt80": None, "note": note}, {}
    weak = np.array([scores["unified"][i][metric] for i in rows])
    strong = np.array([scores["separated"][i][metric] for i in rows])
    conf = np.array([unified[i].confidence for i in rows])
    curve = _significant(threshold_curve(weak, strong, conf), weak, strong, ecfg)
    oracle = oracle_curve(weak, strong)
    ratios = curve.apgr is not None
    configured = point_at(weak, strong, conf, threshold)
    hybrid_q = float(np.mean([scores["hybrid"][i][metric] for i in rows])) if rows else 0.0
    hybrid_rate = float(np.mean([runs["hybrid"].answers[i].escalated for i in rows])) if rows else 0.0
    out |= _curve_dict(curve) | {
        "configured": asdict(configured) | ({} if ratios else {"pgr": None}),
        "hybrid": {"escalation_rate": hybrid_rate, "quality": hybrid_q,
                   "pgr": pgr(hybrid_q, curve.q_weak, curve.q_strong) if ratios else None},
        "random_apgr": 0.5 if curve.apgr is not None else None,
        "oracle_apgr": oracle.apgr if ratios else None,
        "per_category": {},
    }
    for kind in SPECIALISTS:
        sub = [j for j, i in enumerate(rows) if labels[i] == kind]
        c = _significant(threshold_curve(weak[sub], strong[sub], conf[sub]), weak[sub], strong[sub], ecfg)
        point = asdict(point_at(weak[sub], strong[sub], conf[sub], threshold)) | ({} if c.apgr is not None else {"pgr": None})
        out["per_category"][kind] = {k: v for k, v in _curve_dict(c).items() if k != "curve"} | {"configured": point}
    return out, {"router (confidence)": curve, "oracle": oracle}


def confidence_calibration(routers: dict[str, list[float | None]], scores: list[dict], labels: list[str],
                            origins: list[str], good: dict | None) -> dict[str, Any] | None:
    """Calibration of each confidence on these held-out rows (the escalatable ones), "good" as the confidence
    model defines it, on all rows and on generated and human-written rows apart; `p` and `y` of the router's
    own confidence on all rows for the reliability diagram."""
    if good is None:
        return None
    out: dict[str, Any] = {}
    for name, conf in routers.items():
        for origin in (ALL_ROWS, GENERATED, HUMAN):
            idx = [i for i, label in enumerate(labels) if label != GENERAL and conf[i] is not None
                   and origin in (ALL_ROWS, origins[i])]
            if len(idx) < 2:
                continue
            p = np.array([conf[i] for i in idx])
            y = np.array([is_good(scores[i], good["semscore"]) for i in idx], dtype=int)
            m = binary_metrics(p, y)
            if name == ROUTER and origin == ALL_ROWS:
                out |= m | {"good": good, "p": p.tolist(), "y": y.tolist()}
            out.setdefault("by_confidence", {}).setdefault(name, {})[origin] = m
    return out if "ece" in out else None


def _targets(arch: dict[str, dict], router: dict[str, Any], categories: list[str],
             runs: dict[str, ArchitectureRun]) -> dict[str, Any]:
    """The issue's targets, each as measured, with whether it was met."""
    # the hybrid's PGR over the escalatable rows: the general rows are the unified answer in all three
    hybrid_pgr = router["hybrid"]["pgr"] if "hybrid" in router else None
    sep_rate = arch["separated"]["escalation_rate"]
    share = arch["hybrid"]["escalation_rate"] / sep_rate if sep_rate else None
    general = [i for i, c in enumerate(categories) if c == GENERAL]
    p50 = {name: percentiles([runs[name].answers[i].total_ms for i in general])["p50"] for name in ("unified", "hybrid")}
    ratio = p50["hybrid"] / p50["unified"] if general and p50["unified"] else None
    human_apgr = router.get("by_confidence", {}).get(ROUTER, {}).get(HUMAN, {}).get("apgr")
    return {
        "hybrid_pgr": {"value": hybrid_pgr, "target": ">= 0.9", "met": hybrid_pgr is not None and hybrid_pgr >= 0.9},
        "hybrid_escalations_vs_separated": {"value": share, "target": "<= 0.5", "met": share is not None and share <= 0.5},
        "hybrid_general_latency_ratio": {"value": ratio, "target": "<= 1.2", "met": ratio is not None and ratio <= 1.2},
        "apgr": {"value": router.get("apgr"), "target": ">= 0.6",
                 "met": router.get("apgr") is not None and router["apgr"] >= 0.6},
        "apgr_human_rows": {"value": human_apgr, "target": ">= 0.6", "met": human_apgr is not None and human_apgr >= 0.6},
    }


def seed_table(arch: dict[str, dict], metric: str) -> list[dict[str, Any]]:
    """The seed's comparison rows, each with its stars and the figure measured for it."""

    def expertise(name: str) -> float | None:
        qs = [arch[name]["quality"][c][metric] for c in SPECIALISTS if c in arch[name]["quality"]]
        return float(np.mean(qs)) if qs else None

    measured = {
        "speed": ("median whole answer, ms", lambda a: arch[a]["latency"]["total_ms"]["p50"]),
        "memory": ("peak resident memory, MB", lambda a: arch[a]["peak_rss_mb"]),
        "expertise": (f"{metric} on qna + technical rows", expertise),
        "complexity": ("not measured", lambda a: None),
        "scalability": ("not measured", lambda a: None),
        "resources": ("CPU seconds per answer", lambda a: arch[a]["cpu_s_per_answer"]),
    }
    return [{"property": prop, "measure": label, **{a: {"stars": SEED_STARS[prop][a], "value": fn(a)}
                                                     for a in ("hybrid", "separated", "unified")}}
            for prop, (label, fn) in measured.items()]


# ---------------------------------------------------------------- the run


def compare(ws: Workspace, cfg: ModelConfig, ecfg: EvaluationConfig, out_dir: Path, data: list[Path] | None = None,
            show_progress: bool = True) -> Comparison:
    """Run the comparison and write its folder; returns the metrics and the files written."""
    files_in = data or default_files(ws)
    rows = load_eval_rows(files_in, ecfg.limit, ecfg.seed)
    paths = _model_paths(ws)
    started = time.perf_counter()
    assistant = Assistant.from_config(ws, cfg, log=False)
    try:
        predictions = assistant.classifier.predict([r.question for r in rows])
        labels = [p.label for p in predictions]
        categories = [r.category or p.label for r, p in zip(rows, predictions, strict=True)]
        extra = len(rows) + sum(c in SPECIALISTS for c in categories)
        with Progress(disable=not show_progress, transient=True) as bar:
            runs = {}
            for name in RUN_ORDER:
                task = bar.add_task(f"{name}: answering {len(rows)} rows", total=len(rows))
                runs[name] = run_architecture(name, assistant, rows, predictions, lambda t=task: bar.advance(t))
            task = bar.add_task("base and specialists, side by side", total=extra)
            answers = _model_answers(assistant, rows, categories, runs, lambda: bar.advance(task))
        engine_name = assistant.engine.name
        good = assistant.confidence.good if assistant.confidence else None
        threshold, _ = assistant.threshold()
    finally:
        assistant.close()

    encoder = SentenceEncoder.load(cfg)
    refs = [r.references for r in rows]

    def score(texts: dict[int, str]) -> dict[int, dict]:
        """Row index -> metrics of the answer given to that row."""
        idx = sorted(texts)
        scored = aq.score_answers(encoder, [texts[i] for i in idx], [refs[i] for i in idx], ecfg.short_answer_words)
        return dict(zip(idx, scored, strict=True))

    arch_scores = {}
    for name in ARCHITECTURES:
        by_row = score(dict(enumerate(a.text for a in runs[name].answers)))
        arch_scores[name] = [by_row[i] for i in range(len(rows))]
    model_scores = {name: score(answers[name]) for name in MODELS}
    metric = ecfg.quality_metric
    arch = {name: _architecture_metrics(runs[name], arch_scores[name], categories) for name in ARCHITECTURES}
    router, curves = _router(cfg, metric, runs, arch_scores, labels, ecfg, threshold)
    origins = [GENERATED if r.source == GENERATED else HUMAN for r in rows]
    routers = confidences(ws, runs)
    router["by_confidence"], drawn = _router_curves(metric, runs, arch_scores, labels, origins, routers, ecfg)
    if curves and GENERATION_ONLY in drawn:
        curves["router (generation only)"] = drawn[GENERATION_ONLY]
    models = {}
    for name in MODELS:
        idx = sorted(answers[name])
        examples = [ChatExample(rows[i].system or cfg.system_prompt, rows[i].question, rows[i].references[0],
                                rows[i].history) for i in idx]
        models[name] = {"rows": len(idx), "quality": aq.by_category([model_scores[name][i] for i in idx],
                                                                   [categories[i] for i in idx]),
                        **summarize_losses(reference_losses(cfg, paths[name], examples))}
    known = [i for i, r in enumerate(rows) if r.category in LABEL_IDS]
    probs = np.array([[predictions[i].probs[name] for name in LABELS] for i in known]).reshape(-1, len(LABELS))
    clf = classification_metrics(probs, np.array([LABEL_IDS[rows[i].category] for i in known], dtype=np.int64), LABELS)
    confidence = confidence_calibration(routers, arch_scores[UNIFIED], labels, origins, good)
    metrics: dict[str, Any] = {
        "schema_version": 1,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "engine": engine_name,
        "quality_metric": metric,
        "rows": len(rows),
        "rows_by_category": dict(Counter(categories)),
        "limit": ecfg.limit,
        "seed": ecfg.seed,
        "data": [{"path": str(p), "sha256": sha256_file(p)} for p in files_in],
        "architectures": arch,
        "router": router,
        "models": models,
        "classifier": {k: v for k, v in clf.to_dict().items() if k != "per_class"},
        "confidence": {k: v for k, v in confidence.items() if k not in ("p", "y")} if confidence else None,
        "seed_table": seed_table(arch, metric),
        "targets": _targets(arch, router, categories, runs),
        "seconds": round(time.perf_counter() - started, 1),
    }
    _validate(metrics)
    files = {name: out_dir / name for name in FILES}
    with atomic_directory(out_dir) as tmp:
        atomic_write_json(tmp / "metrics.json", metrics)
        atomic_write_jsonl(tmp / "answers.jsonl", _answer_rows(rows, categories, labels, runs, answers,
                                                               arch_scores, model_scores, metric))
        atomic_write_text(tmp / "report.md", markdown(metrics, rows, runs, answers))
        _plots(tmp, metrics, runs, curves, confidence, clf)
    logger.info("comparison of %d rows written to %s", len(rows), out_dir)
    return Comparison(metrics, out_dir, files)


def confidences(ws: Workspace, runs: dict[str, ArchitectureRun]) -> dict[str, list[float | None]]:
    """Per row, the router's confidence in its unified answer and, beside it, the generation-only model's
    (fitted on the same answers without the knowledge base's check) when there is one."""
    answers = runs[UNIFIED].answers
    out = {ROUTER: [a.confidence for a in answers]}
    try:
        baseline = ConfidenceModel.load(ws.unified_model / GENERATION_ONLY_FILE)
    except ModelError as e:
        logger.warning("%s; compared without it", e)
        baseline = None
    if baseline is not None and all(a.features is not None for a in answers):
        out[GENERATION_ONLY] = baseline.predict_features(np.array([a.features for a in answers])).tolist()
    return out


def _validate(metrics: dict[str, Any]) -> None:
    """A bug that breaks the documented keys fails here, before anything is written."""
    import jsonschema

    jsonschema.validate(json.loads(json.dumps(metrics)), schema())


def _answer_rows(rows: list[EvalRow], categories: list[str], labels: list[str], runs: dict[str, ArchitectureRun],
                 answers: dict[str, dict[int, str]], arch_scores: dict[str, list[dict]],
                 model_scores: dict[str, dict[int, dict]], metric: str) -> list[dict[str, Any]]:
    out = []
    for i, row in enumerate(rows):
        out.append({
            "id": row.id, "category": categories[i], "predicted": labels[i], "question": row.question,
            "references": list(row.references), "source": row.source,
            "architectures": {name: asdict(runs[name].answers[i]) | {metric: arch_scores[name][i][metric]}
                              for name in ARCHITECTURES},
            "models": {name: {"answer": answers[name][i], **model_scores[name][i]}
                       for name in MODELS if i in answers[name]},
        })
    return out


def _plots(folder: Path, metrics: dict[str, Any], runs: dict[str, ArchitectureRun], curves: dict[str, RoutingCurve],
           confidence: dict[str, Any] | None, clf: Any) -> None:
    router = metrics["router"]
    metric = metrics["quality_metric"]
    lines = {name: [(p.escalation_rate, p.quality) for p in c.points] for name, c in curves.items()}
    marks = {}
    if curves:
        c = curves["router (confidence)"]
        lines["random"] = [(0.0, c.q_weak), (1.0, c.q_strong)]
        marks[f"threshold {router['threshold']:.2f}"] = (router["configured"]["escalation_rate"],
                                                         router["configured"]["quality"])
        marks["hybrid as configured"] = (router["hybrid"]["escalation_rate"], router["hybrid"]["quality"])
    plots.routing_curve_plot(lines, marks, folder / "routing_curve.png",
                             f"Routing curve ({router['rows']} rows), APGR {fmt(router.get('apgr'))}", metric)
    plots.latency_histogram({name: [a.total_ms for a in runs[name].answers] for name in ARCHITECTURES},
                            folder / "latency.png", f"Latency per architecture ({metrics['engine']} engine)")
    if confidence:
        p, y = np.array(confidence["p"]), np.array(confidence["y"])
        curve = {"P(good), held-out rows": (np.stack([1 - p, p], axis=1), y)}
    else:
        curve = {}
    plots.reliability_diagram(curve, folder / "reliability.png", "Confidence of the unified answer")
    plots.confusion_matrix_plot(clf.confusion, clf.labels, folder / "confusion_matrix.png", "Classifier on the rows")
