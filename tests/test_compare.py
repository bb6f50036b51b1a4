"""`pz2 eval compare` end to end on the tiny trained workspace, and its command-line errors.

The tiny models write nonsense, so these tests check what must hold whatever the answers are:
every file is written, metrics.json follows its schema, the architectures route as defined, the
figures agree with the per-row answers they came from.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from pz2.config import EvaluationConfig, KnowledgeConfig, TrainingConfig
from pz2.evaluation.compare import FILES, compare, schema
from pz2.evaluation.eval_set import load_eval_rows
from pz2.knowledge.build import build_knowledge
from pz2.models.sentence import SentenceEncoder
from pz2.workspace import Workspace
from tests.conftest import REPO


@pytest.fixture(scope="module")
def comparison(confident_ws: Workspace, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("compare") / "finetuning"
    shutil.copytree(confident_ws.root, root, ignore=shutil.ignore_patterns("checkpoints", "training_logs"))
    ws = Workspace(root)
    # a knowledge base, as every real workspace has: the specialists answer from passages, the unified answers
    # are checked against them
    cfg = ws.model_config()
    build_knowledge(ws.knowledge, KnowledgeConfig(collections=["banks"]), TrainingConfig(), SentenceEncoder.load(cfg))
    return ws, compare(ws, ws.model_config(), EvaluationConfig(limit=2, bootstrap=100), ws.eval_logs / "run",
                       show_progress=False)


def test_every_report_and_plot_file_is_written_and_not_empty(comparison) -> None:
    _, result = comparison
    for name in FILES:
        assert result.files[name].stat().st_size > 0, name
    assert result.files["routing_curve.png"].read_bytes()[:4] == b"\x89PNG"


def test_metrics_json_validates_against_its_schema(comparison) -> None:
    _, result = comparison
    metrics = json.loads(result.files["metrics.json"].read_text())
    jsonschema.validate(metrics, schema())
    broken = dict(metrics, architectures={k: v for k, v in metrics["architectures"].items() if k != "hybrid"})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema())


def test_architectures_route_as_defined_and_figures_match_the_rows(comparison) -> None:
    _, result = comparison
    m = result.metrics
    rows = [json.loads(line) for line in result.files["answers.jsonl"].read_text().splitlines()]
    assert len(rows) == m["rows"]
    unified = [r["architectures"]["unified"] for r in rows]
    separated = [r["architectures"]["separated"] for r in rows]
    hybrid = [r["architectures"]["hybrid"] for r in rows]
    assert all(a["model"] == "unified" and not a["escalated"] for a in unified)
    # separated: the classifier's category decides, every time
    assert [a["model"] for a in separated] == [r["predicted"] if r["predicted"] != "general" else "unified" for r in rows]
    assert m["architectures"]["unified"]["escalation_rate"] == 0
    assert m["architectures"]["separated"]["escalation_rate"] == pytest.approx(
        sum(r["predicted"] != "general" for r in rows) / len(rows))
    assert m["architectures"]["hybrid"]["escalation_rate"] == pytest.approx(sum(a["escalated"] for a in hybrid) / len(rows))
    # general never escalates in the hybrid
    assert not any(a["escalated"] for r, a in zip(rows, hybrid, strict=True) if r["predicted"] == "general")
    # greedy decoding: a hybrid answer left to the unified model is the unified model's answer
    for r, h in zip(rows, hybrid, strict=True):
        if not h["escalated"]:
            assert h["text"] == r["architectures"]["unified"]["text"]
    assert m["architectures"]["separated"]["specialist_loads"] <= 2
    metric = m["quality_metric"]
    mean = sum(a[metric] for a in unified) / len(unified)
    assert m["architectures"]["unified"]["quality"]["all"][metric] == pytest.approx(mean)


def test_an_escalated_hybrid_turn_gives_the_separated_runs_answer_and_score(comparison) -> None:
    """The hybrid and the separated architecture differ in routing only: where the hybrid escalates a row to the
    specialist the separated run asked, the answer (grounded in the same passages) and its score are the same."""
    _, result = comparison
    metric = result.metrics["quality_metric"]
    rows = [json.loads(line) for line in result.files["answers.jsonl"].read_text().splitlines()]
    same = [(r["architectures"]["hybrid"], r["architectures"]["separated"]) for r in rows
            if r["architectures"]["hybrid"]["escalated"]
            and r["architectures"]["hybrid"]["model"] == r["architectures"]["separated"]["model"]]
    assert same, "no row escalated to the separated run's specialist: nothing compared"
    for hybrid, separated in same:
        assert hybrid["text"] == separated["text"] and hybrid["sources"] == separated["sources"]
        assert hybrid[metric] == separated[metric]
    assert any(h["sources"] for h, _ in same)   # grounded: the bug was a separated run without passages


def test_the_router_curve_spans_zero_to_one_and_marks_the_threshold(comparison) -> None:
    _, result = comparison
    r = result.metrics["router"]
    if r.get("curve"):
        rates = [p["escalation_rate"] for p in r["curve"]]
        assert rates[0] == 0 and rates[-1] == 1 and rates == sorted(rates)
        assert 0 <= r["configured"]["escalation_rate"] <= 1
    assert r["threshold"] == 0.7
    assert (r["apgr"] is None) == (r.get("note") is not None)
    # the router's confidence and the generation-only one on the same rows, all and by origin
    assert "confidence" in r["by_confidence"] and "all" in r["by_confidence"]["confidence"]
    assert r["by_confidence"]["confidence"]["all"]["rows"] == r["rows"]


def test_status_shows_the_latest_comparison(comparison, tmp_path: Path) -> None:
    from pz2 import status as st

    ws, _ = comparison
    entries = [e for e in st.collect(ws, ws.model_config()) if e.group == "eval"]
    assert entries and {"hybrid", "unified", "separated"} <= {e.name.split()[-1] for e in entries}


def test_rows_come_with_the_detailed_answer_as_second_reference(small_data: Path) -> None:
    rows = load_eval_rows([small_data / "unified_test.jsonl"], limit=3, seed=0)
    assert len(rows) == 9 and {r.category for r in rows} == {"qna", "technical", "general"}
    # a specialist's category has a detailed answer beside the short one; chat has one answer
    for r in rows:
        if r.category == "general":
            assert len(r.references) == 1
        else:
            assert len(r.references) == 2 and len(r.references[1]) > len(r.references[0])


# ---------------------------------------------------------------- errors


def test_a_file_with_the_wrong_fields_stops_with_its_line_number(cli, tmp_path: Path) -> None:
    bad = tmp_path / "mine.jsonl"
    bad.write_text('{"input_text": "hi", "target_text": "hello"}\n{"input_text": "what?"}\n')
    result = cli("eval", "compare", "--data", str(bad))
    assert result.exit_code == 1
    assert f"{bad}:2" in result.output and "target_text" in result.output and "Traceback" not in result.output


def test_a_missing_data_file_or_models_folder_is_one_line(cli, tmp_path: Path) -> None:
    for args in (["--data", str(tmp_path / "nope.jsonl")], ["--models", str(tmp_path / "nope")]):
        result = cli("eval", "compare", *args)
        assert result.exit_code == 2 and "no such" in result.output
        assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("limit", ["1", "0"])  # 0 = every row: it must reach the models, not fail as a config value
def test_untrained_models_are_named_with_the_command_that_trains_them(cli, small_data: Path, limit: str) -> None:
    result = cli("eval", "compare", "--limit", limit)
    assert result.exit_code == 1 and "pz2 train" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("args, message", [
    (["--model_type", "compare", "--model_path", "does/not/exist"], "no such models folder"),
    (["--model_type", "generation", "--model_path", "does/not/exist"], "no such model folder"),
    (["--model_type", "magic", "--model_path", "models"], "invalid choice"),
    (["--model_type", "compare", "--data", "does/not/exist.jsonl"], "no such file"),
])
def test_the_seed_script_stops_with_one_clear_error(args: list[str], message: str, workspace: Workspace) -> None:
    script = REPO / "finetuning" / "scripts" / "model_evaluation.py"
    out = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=120)
    assert out.returncode in (1, 2) and message in out.stderr + out.stdout
    assert "Traceback" not in out.stderr
