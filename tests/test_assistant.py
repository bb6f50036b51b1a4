"""The hybrid assistant end to end on tiny trained models: the seed's five scenarios and the routing record.

The confidence model comes from the `confident_ws` fixture (conftest.py), which states its premise.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pz2.cli import app
from pz2.runtime.assistant import Assistant
from pz2.workspace import Workspace

RECORD = {"route", "reason", "category", "confidence", "complexity", "latency_ms", "specialist_state"}


@pytest.fixture
def assistant(confident_ws: Workspace):
    a = Assistant.from_config(confident_ws, confident_ws.model_config())
    yield a
    a.close()


def test_scenario_1_general_question_in_korean_stays_on_the_unified_model(assistant) -> None:
    # the English-only base cannot read it: an honest reply in Korean, not an invented English sentence
    turn = assistant.ask("오늘 날씨 어때?")
    assert (turn.route, turn.reason, turn.category) == ("unified", "unreadable_input", "general")
    assert turn.specialist is None and turn.specialist_state == "not needed"
    assert turn.classifier["note"] == "no English text: no signal"
    assert "영어" in turn.answer and turn.generation is None


def test_scenario_2_unified_answer_then_offer_then_expert_mode_on_request(assistant) -> None:
    first = assistant.ask("SketchUp에서 복잡한 곡면 모델링하는 고급 기법을 알려줘", session="s2")
    assert (first.route, first.reason, first.category) == ("offer", "offer", "technical")
    assert first.unified_answer is not None and first.confidence < 0.7
    assert assistant.pending_offer("s2")
    second = assistant.ask("네, 전문가 모드로 해주세요", session="s2")
    assert (second.route, second.reason, second.specialist) == ("specialist", "explicit_request", "technical")
    assert second.question == first.message  # the specialist answers the SketchUp question, not "네"
    assert not assistant.pending_offer("s2")


def test_scenario_3_feelings_are_answered_by_the_unified_model(assistant) -> None:
    turn = assistant.ask("I feel sad today")
    assert (turn.route, turn.reason, turn.category) == ("unified", "general", "general")


def test_scenario_4_low_confidence_technical_answer_activates_the_specialist(assistant) -> None:
    # The seed names the QnA specialist here; by DESIGN.md's labels a how-to for a tool is technical.
    turn = assistant.ask("How to draw a line in CAD software?", session="s4")
    assert (turn.route, turn.reason, turn.category) == ("specialist", "low_confidence", "technical")
    assert turn.unified_answer is not None  # the unified model answered first, as in the seed
    assert turn.confidence < 0.7 and f"{turn.confidence:.2f} < 0.70" in turn.detail
    assert turn.specialist == "technical" and turn.specialist_state.startswith("technical: ")


def test_scenario_5_expert_mode_keyword_loads_the_technical_specialist_at_once(assistant) -> None:
    turn = assistant.ask("SketchUp expert mode advanced modeling", session="s5")
    assert (turn.route, turn.reason, turn.category) == ("specialist", "explicit_request", "technical")
    assert turn.unified_answer is None  # no unified answer first: straight to the expert
    assert turn.specialist_state == "technical: loaded"


def test_every_turn_returns_and_logs_the_routing_record(confident_ws: Workspace, assistant) -> None:
    turns = [assistant.ask(m, session="log") for m in ("hi there", "What is an API?", "/ignored", "")]
    log = confident_ws.assistant_logs / "decisions.jsonl"
    lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert len(lines) >= len(turns)
    for turn, logged in zip(turns, lines[-len(turns):], strict=True):
        assert RECORD <= set(turn.record()) and RECORD <= set(logged)
        assert logged["message"] == turn.message and logged["route"] == turn.route
        assert turn.latency_ms > 0 and 0 <= turn.complexity <= 1


def test_a_specialist_that_fails_to_load_falls_back_to_the_unified_answer(confident_ws: Workspace, tmp_path: Path) -> None:
    a = Assistant.from_config(confident_ws, confident_ws.model_config())
    a.pool.paths["qna"] = tmp_path / "missing_specialist"
    turn = a.ask("What is entropy?", expert=True)
    assert (turn.route, turn.reason, turn.category) == ("unified", "fallback", "qna")
    assert "no such model folder" in turn.detail and turn.answer == turn.unified_answer
    assert turn.specialist_state.startswith("failed")
    a.close()


def test_usage_prediction_preloads_the_next_specialist_of_a_session(confident_ws: Workspace) -> None:
    a = Assistant.from_config(confident_ws, confident_ws.model_config())
    a.ask("How do I trim lines in AutoCAD? expert mode", session="cad")
    a.pool.drain(timeout=30)
    assert a.pool.unload("technical")  # out of memory, as an eviction would leave it
    a.ask("How do I add dimensions in AutoCAD?", session="cad")  # technical again: the predictor preloads it
    a.pool.drain(timeout=30)
    assert a.pool.state("technical") == "loaded"
    turn = a.ask("How do I create a block in AutoCAD? expert mode", session="cad")
    assert turn.specialist_state == "technical: hit"
    a.close()


def test_single_and_batch_modes_from_the_command_line(confident_ws: Workspace, tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["--workspace", str(confident_ws.root), "chat"]
    single = runner.invoke(app, [*base, "--text", "SketchUp expert mode advanced modeling", "--json"])
    assert single.exit_code == 0, single.output
    record = json.loads(single.output.strip().splitlines()[-1])
    assert (record["route"], record["reason"]) == ("specialist", "explicit_request")

    source, target = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text('{"text": "I feel sad today", "id": 1}\n{"input_text": "What is DNS?", "expert": true}\n')
    before = source.read_bytes()
    batch = runner.invoke(app, [*base, "--mode", "batch", "--input", str(source), "--output", str(target)])
    assert batch.exit_code == 0, batch.output
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert [r["routing"]["reason"] for r in rows] == ["general", "explicit_request"]
    assert rows[0]["id"] == 1 and all(isinstance(r["answer"], str) for r in rows)
    assert source.read_bytes() == before

    source.write_text('{"text": "fine"}\n{"text": "%s"}\n' % ("word " * 2500))
    too_long = runner.invoke(app, [*base, "--input", str(source), "--output", str(tmp_path / "x.jsonl")])
    assert too_long.exit_code == 1 and "in.jsonl:2" in too_long.output and "context" in too_long.output
    source.write_text('{"text": "fine"}\n{"text": 5}\n')
    bad = runner.invoke(app, [*base, "--input", str(source), "--output", str(tmp_path / "x.jsonl")])
    assert bad.exit_code == 1 and "in.jsonl:2" in bad.output and not (tmp_path / "x.jsonl").exists()
    missing = runner.invoke(app, [*base, "--mode", "single"])
    assert missing.exit_code == 2 and "--text" in missing.output


def test_chat_without_a_trained_classifier_is_a_one_line_error(cli) -> None:
    result = cli("chat", "--text", "hello")
    assert result.exit_code == 1
    assert "pz2 train classifier" in result.output and "Traceback" not in result.output


def test_both_engines_route_and_answer_alike_through_the_whole_assistant(confident_ws: Workspace) -> None:
    runner = CliRunner()
    records = {}
    for engine in ("llamacpp", "transformers"):
        result = runner.invoke(app, ["--workspace", str(confident_ws.root), "chat", "--engine", engine, "--json",
                                     "--text", "SketchUp expert mode advanced modeling"])
        assert result.exit_code == 0, result.output
        records[engine] = json.loads(result.stdout.strip().splitlines()[-1])
    fast, reference = records["llamacpp"], records["transformers"]
    assert (fast["route"], fast["reason"], fast["specialist"]) == (reference["route"], reference["reason"], "technical")
    assert fast["answer"] == reference["answer"]
