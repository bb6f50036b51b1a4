"""The confidence model: calibrated P(good) from generation features, fitted and stored."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pz2.cli import app
from pz2.errors import ModelError
from pz2.runtime.confidence import FEATURES, GENERATION_FEATURES, ConfidenceModel, features, threshold_for
from pz2.runtime.engine import Generation
from pz2.runtime.prediction import Prediction
from pz2.workspace import Workspace


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features whose true P(good) is known: a logistic function of two of them."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURES)))
    p = 1 / (1 + np.exp(-(1.5 * x[:, 0] - 1.0 * x[:, 2] + 0.3)))
    return x, (rng.random(n) < p).astype(float), p


GOOD = {"short_answer_words": 5, "semscore": 0.6}


def fit(x: np.ndarray, y: np.ndarray) -> ConfidenceModel:
    return ConfidenceModel.fit(x, y, FEATURES, 48, GOOD, np.ones(len(y), dtype=bool))[0]


def test_fitted_probabilities_are_calibrated_on_new_data() -> None:
    x, y, _ = synthetic(2000, 0)
    model = fit(x, y)
    assert model.metrics["ece"] < 0.05 and model.metrics["auc"] > 0.75  # out of fold
    x_new, y_new, p_true = synthetic(4000, 1)
    p = model.predict_features(x_new)
    assert np.abs(p - p_true).mean() < 0.05
    below = p < 0.7
    assert y_new[below].mean() < 0.7 <= y_new[~below].mean()  # "< 0.70" means what it says


def test_the_ece_comes_with_a_bootstrap_interval_that_narrows_with_more_rows() -> None:
    widths = []
    for n in (400, 4000):
        x, y, _ = synthetic(n, 5)
        m = fit(x, y).metrics
        lo, hi = m["ece_ci95"]
        assert 0 <= lo < hi and lo <= m["ece"] + 0.02   # the percentile interval sits around the estimate
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2


def test_saved_model_loads_to_the_same_predictions_and_refuses_other_features(tmp_path: Path) -> None:
    x, y, _ = synthetic(300, 2)
    model = fit(x, y)
    model.save(tmp_path / "confidence.json")
    again = ConfidenceModel.load(tmp_path / "confidence.json")
    np.testing.assert_allclose(again.predict_features(x), model.predict_features(x))
    assert ConfidenceModel.load(tmp_path / "missing.json") is None
    raw = json.loads((tmp_path / "confidence.json").read_text())
    raw["features"] = raw["features"][:-1]
    (tmp_path / "confidence.json").write_text(json.dumps(raw))
    with pytest.raises(ModelError, match="refit"):
        ConfidenceModel.load(tmp_path / "confidence.json")
    (tmp_path / "confidence.json").write_text('{"features": [')  # cut off mid-write by another tool
    with pytest.raises(ModelError, match="confidence.json: not valid JSON, truncated or corrupt"):
        ConfidenceModel.load(tmp_path / "confidence.json")


def test_one_class_data_is_refused_with_what_to_change() -> None:
    x, _, _ = synthetic(50, 3)
    with pytest.raises(ModelError, match="both good and bad answers"):
        fit(x, np.zeros(50))


def test_features_of_a_generation_include_its_end_of_turn_decision() -> None:
    gen = Generation("", [], [-0.05], [0.3], finished=True, first_token_s=0.01, total_s=0.01)
    prediction = Prediction("technical", 0.9, {"qna": 0.05, "technical": 0.9, "general": 0.05}, None)
    f = dict(zip(FEATURES, features(gen, prediction, 48, None), strict=True))
    assert f["mean_logprob"] == pytest.approx(-0.05) and f["length"] == 0 and f["finished"] == 1
    assert f["is_technical"] == 1 and f["is_general"] == 0 and f["category_probability"] == 0.9
    far = fit(*synthetic(300, 4)[:2])
    assert 0 <= far.predict_features(np.full((1, len(FEATURES)), 1e6))[0] <= 1  # clipped, never NaN


def test_train_confidence_on_the_tiny_workspace(hybrid: Workspace) -> None:
    """The tiny model's answers to the generated questions are never right (no fact contained, SemScore
    under 0.6): the command says so and writes nothing. With every other reference replaced by the model's
    own answer (good by construction) and 10 human-written questions besides, it fits over a stale earlier
    fit, saves both models, the scored rows and the reliability diagram."""
    from pz2.data.jsonl import read_jsonl
    from pz2.data.loading import reference_pairs
    from pz2.fileio import atomic_write_jsonl
    from pz2.runtime.engine import build_engine

    runner = CliRunner()
    command = ["--workspace", str(hybrid.root), "train", "confidence", "--human-limit"]
    refused = runner.invoke(app, [*command, "0"])
    assert refused.exit_code == 1 and "both good and bad answers" in refused.output
    assert not (hybrid.unified_model / "confidence.json").exists()

    cfg = hybrid.model_config()
    engine = build_engine(cfg, hybrid.unified_model / "adapter")
    path = hybrid.datasets / "unified_validation.jsonl"
    pairs = reference_pairs(path, cfg.system_prompt, None)
    rows = read_jsonl(path)
    for i, (row, (_, user, _, _)) in enumerate(zip(rows, pairs, strict=True)):
        answer = engine.generate(user, engine.unified).text
        if i % 2 == 0 and answer:
            row["target_text"] = answer
    atomic_write_jsonl(path, rows)
    stale = {"features": ["an_old_feature"], "weights": [1.0], "bias": 0.0}  # fitted by an older pz2
    (hybrid.unified_model / "confidence.json").write_text(json.dumps(stale))
    ok = runner.invoke(app, [*command, "10"])
    assert ok.exit_code == 0, ok.output  # a stale fit is replaced, not an obstacle to its own refit
    saved = json.loads((hybrid.unified_model / "confidence.json").read_text())
    assert saved["features"] == list(FEATURES)
    m = saved["metrics"]
    assert m["rows"] == len(rows) + 10 and 0.2 < m["good_rate"] < 0.8
    assert m["generated"]["rows"] == len(rows) and m["human"]["rows"] == 10
    assert not m["checked"] and m["answers"] == m["rows"]   # no knowledge base here: no check, one view per answer
    logged = [json.loads(line) for line in (hybrid.unified_model / "confidence_rows.jsonl").read_text().splitlines()]
    assert len(logged) == len(rows) + 10 and {r["origin"] for r in logged} == {"generated", "human"}
    # the budget's curve: the escalatable answers' out-of-fold P(good), sorted
    eligible = sorted(r["p_good"] for r in logged if r["category"] != "general")
    assert saved["curve"] == pytest.approx(eligible, abs=1e-4)
    baseline = json.loads((hybrid.unified_model / "confidence_generation_only.json").read_text())
    assert baseline["columns"] == list(GENERATION_FEATURES) and saved["columns"] == list(FEATURES)
    assert (hybrid.unified_model / "confidence_reliability.png").stat().st_size > 1000


def test_a_budget_finds_the_threshold_that_escalates_that_share_of_its_curve() -> None:
    curve = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
    for budget in (0.0, 0.3, 0.5, 1.0):
        t = threshold_for(curve, budget)
        assert np.mean(np.array(curve) < t) == pytest.approx(budget)
    assert threshold_for(curve, 0.3) == 0.4
    tied = [0.2, 0.5, 0.5, 0.5, 0.9]
    assert np.mean(np.array(tied) < threshold_for(tied, 0.5)) <= 0.5   # ties escalate together: never past the budget
    with pytest.raises(ModelError, match="refit"):
        threshold_for([], 0.3)


def test_the_curve_of_a_fit_holds_the_escalatable_rows_only() -> None:
    x, y, _ = synthetic(300, 6)
    eligible = np.arange(300) % 3 != 0
    model, oof = ConfidenceModel.fit(x, y, FEATURES, 48, GOOD, eligible)
    assert model.curve == sorted(round(float(p), 6) for p in oof[eligible])
    # the generation-only model reads its own columns of the same vectors
    baseline, _ = ConfidenceModel.fit(x, y, GENERATION_FEATURES, 48, GOOD, eligible)
    shifted = x.copy()
    shifted[:, len(GENERATION_FEATURES):] += 5.0
    np.testing.assert_allclose(baseline.predict_features(shifted), baseline.predict_features(x))
    assert not np.allclose(model.predict_features(shifted), model.predict_features(x))


def test_status_shows_the_threshold_in_force_and_the_budget_it_came_from(confident_ws: Workspace) -> None:
    from pz2 import status as st
    from pz2.runtime.confidence import CONFIDENCE_FILE

    model = ConfidenceModel.load(confident_ws.unified_model / CONFIDENCE_FILE)

    def shown(overrides: dict) -> dict:
        entry = next(e for e in st.collect(confident_ws, confident_ws.model_config(overrides))
                     if e.name == "unified_model/confidence (router)")
        return entry.metrics

    default = shown({})
    assert (default["threshold"], default["threshold_from"]) == (0.7, "runtime.router.confidence_threshold")
    budgeted = shown({"runtime.router.escalation_budget": 0.3})
    assert budgeted["threshold"] == pytest.approx(model.threshold(0.3), abs=1e-4)
    assert budgeted["threshold_from"].startswith("escalation_budget 0.3 on ")


def test_views_of_one_answer_share_a_fold() -> None:
    """The fit checks each answer twice (with the knowledge base as it is, and without the passages stating
    it): both rows must fall in one fold, or the out-of-fold figures would score answers the model saw."""
    x, y, _ = synthetic(200, 7)
    twice, labels = np.vstack([x, x]), np.concatenate([y, y])
    groups = np.concatenate([np.arange(200), np.arange(200)])
    grouped = ConfidenceModel.out_of_fold(twice, labels, groups=groups)
    np.testing.assert_allclose(grouped[:200], grouped[200:])   # one model predicted both copies
    ungrouped = ConfidenceModel.out_of_fold(twice, labels)
    assert not np.allclose(ungrouped[:200], ungrouped[200:])


def test_train_confidence_with_feedback_fits_on_the_rated_answers_weighted(confident_ws: Workspace, tmp_path: Path) -> None:
    """Answers rated in the chat join the fit with the features their decision records kept, weighted (explicit
    ratings by `feedback_weight`, implied ones by `implicit_weight`), with their own out-of-fold figures."""
    from pz2.runtime.append_log import AppendLog
    from pz2.runtime.assistant import Assistant
    from pz2.runtime.feedback import FEEDBACK_FILE, Feedback
    from pz2.runtime.turn import Options
    from tests.conftest import copy_workspace

    ws = copy_workspace(confident_ws, tmp_path)
    shutil.rmtree(ws.assistant_logs, ignore_errors=True)   # other tests' turns and ratings
    assistant = Assistant.from_config(ws, ws.model_config())
    questions = ["What is gravity?", "How do I undo a commit in git?", "What causes the seasons?", "Why is the sky blue?",
                 "How do I freeze the top row in Excel?", "What is TCP?", "How do I list files in Linux?", "What is DNS?",
                 "How do I exit vim?", "Who wrote Hamlet?", "What is an API?", "How do I copy a file?"]
    try:
        for i, q in enumerate(questions):
            turn = assistant.ask(q, session=f"s{i}", options=Options(model="unified"))
            assert turn.features is not None and turn.specialist is None
            assistant.feedback(turn.id, "good" if i % 3 else "bad", "api")
        implied = assistant.ask("What is a kernel?", session="t", options=Options(model="unified"))
    finally:
        assistant.close()
    AppendLog(ws.assistant_logs / FEEDBACK_FILE).write(Feedback(implied.id, "bad", "offer_accepted").record())
    path = ws.unified_model / "confidence.json"
    result = CliRunner().invoke(app, ["--workspace", str(ws.root), "train", "confidence", "--human-limit", "0", "--feedback"])
    assert result.exit_code == 0, result.output
    assert "answers people rated: 13 checked answers, 62% good" in result.output
    saved = json.loads(path.read_text())
    assert saved["metrics"]["feedback"]["rows"] == 13 and saved["metrics"]["feedback"]["good_rate"] == pytest.approx(8 / 13)
    rows = [json.loads(line) for line in (ws.unified_model / "confidence_rows.jsonl").read_text().splitlines()]
    rated = {r["input_text"]: r for r in rows if r["origin"] == "feedback"}
    assert sorted(rated) == sorted([*questions, "What is a kernel?"]) and all(0 <= r["p_good"] <= 1 for r in rated.values())
    assert rated["What is a kernel?"]["weight"] == 0.5 and {rated[q]["weight"] for q in questions} == {2.0}
