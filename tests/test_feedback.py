"""Feedback that trains the router (issue 22, item 5): ratings said and implied, written to an append-only
log that survives a killed writer, read back into preference pairs for TRL's DPO trainer and rows for the
confidence refit, and taken over the API with its auth and its errors."""

from __future__ import annotations

import json
import logging
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import REPO, copy_workspace, live_server, wait_healthy
from typer.testing import CliRunner

from pz2.cli import app
from pz2.config import ServingConfig
from pz2.runtime.append_log import AppendLog, read_log
from pz2.runtime.confidence import _fit_logistic
from pz2.runtime.feedback import FEEDBACK_FILE, Feedback, labelled_answers, preference_pairs, verdicts
from pz2.workspace import Workspace

WRITER = """
import sys
from pathlib import Path
from pz2.runtime.append_log import AppendLog
log = AppendLog(Path(sys.argv[1]), sync=True)
i = 0
while True:
    log.write({"turn": f"t{i}", "rating": "good", "how": "api", "comment": "x" * 50_000})
    i += 1
"""


def test_a_killed_writer_leaves_at_most_one_cut_last_line_which_the_reader_skips(tmp_path: Path, caplog) -> None:
    path = tmp_path / "logs" / FEEDBACK_FILE
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], env={"PYTHONPATH": str(REPO / "src")})
    deadline = time.monotonic() + 60
    while not (path.exists() and path.stat().st_size > 500_000):
        assert writer.poll() is None and time.monotonic() < deadline, "the writer did not write"
        time.sleep(0.01)
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    with path.open("ab") as f:
        f.write(b'{"turn": "cut", "rating": "go')        # what a kill mid-write leaves, whatever the kernel did
    lines = path.read_bytes().split(b"\n")
    broken = [i for i, line in enumerate(lines) if line.strip() and not _parses(line)]
    assert broken == [len(lines) - 1], "only the last line may be cut"
    with caplog.at_level(logging.WARNING):
        records = read_log(path)
    assert len(records) == len(lines) - 1 and [r["turn"] for r in records] == [f"t{i}" for i in range(len(records))]
    assert f"{FEEDBACK_FILE}:{len(lines)}: skipped" in caplog.text
    AppendLog(path, sync=True).write({"turn": "next", "rating": "bad", "how": "api"})   # a new line, not glued on
    assert read_log(path)[-1]["turn"] == "next" and len(read_log(path)) == len(records) + 1


def _parses(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _turn(id: str, question: str, answer: str, follows: str | None = None, specialist: str | None = None,
          unified_answer: str | None = None, features: dict | None = None) -> dict:
    return {"id": id, "question": question, "answer": answer, "follows": follows, "specialist": specialist,
            "unified_answer": answer if unified_answer is None and specialist is None else unified_answer,
            "features": features, "category": "qna", "classifier": {"label": "qna"}}


def _is_trl_conversational_preference(row: dict) -> bool:
    """TRL's conversational preference format, as TRL itself reads it: exactly prompt, chosen and rejected,
    message lists (`trl.data_utils.is_conversational`), the prompt ending with the user's turn."""
    from trl.data_utils import is_conversational

    return (set(row) == {"prompt", "chosen", "rejected"} and is_conversational(row)
            and all(isinstance(m["content"], str) and m["content"] for k in row for m in row[k])
            and row["prompt"][-1]["role"] == "user" and row["chosen"][0]["role"] == row["rejected"][0]["role"] == "assistant"
            and row["chosen"] != row["rejected"])


def test_preference_pairs_from_rejected_and_kept_answers() -> None:
    decisions = [
        _turn("a", "What is TCP?", "A fruit."),                                          # offer accepted: rejected
        _turn("a2", "What is TCP?", "A transport protocol.", follows="a", specialist="qna"),   # kept: nothing more said
        _turn("b", "How do I undo a commit?", "git undo"),                                # 👎, then expert mode
        _turn("b2", "How do I undo a commit?", "git reset --soft HEAD~1", follows="b", specialist="technical"),
        _turn("c", "Capital of France?", "Paris."),                                       # 👍 kept ...
        _turn("c2", "Capital of France?", "Lyon.", follows="c", specialist="qna"),        # ... the expert one 👎
        _turn("d", "What is DNS?", "Dunno."),                                             # 👎 alone: no pair
        _turn("e", "Hi", "Hello!"),                                                        # no rating at all
    ]
    events = [Feedback("a", "bad", "offer_accepted"), Feedback("b", "bad", "api"), Feedback("b", "bad", "expert_request"),
              Feedback("c", "good", "command"), Feedback("c", "bad", "expert_request"), Feedback("c2", "bad", "api"),
              Feedback("d", "bad", "api")]
    judged = verdicts(events)
    assert judged["c"].rating == "good", "an explicit rating outweighs an implicit one, whatever the order"
    assert judged["b"].how == "api", "an explicit rating stands over a later implicit one"
    pairs = preference_pairs(decisions, events)
    got = {(p["prompt"][0]["content"], p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs}
    assert got == {("What is TCP?", "A transport protocol.", "A fruit."),
                   ("How do I undo a commit?", "git reset --soft HEAD~1", "git undo"),
                   ("Capital of France?", "Paris.", "Lyon.")}
    assert all(_is_trl_conversational_preference(p) for p in pairs)


def test_only_unified_answers_the_router_scored_become_rows_to_refit_on() -> None:
    features = {"mean_logprob": -1.0}
    decisions = [_turn("u", "q1", "a1", features=features),
                 _turn("s", "q2", "a2", specialist="qna", unified_answer="first", features=features),  # a specialist's
                 _turn("n", "q3", "a3")]                                                               # never scored
    events = [Feedback(t, "good", "api") for t in ("u", "s", "n", "missing")]
    assert [(r["id"], v.rating) for r, v in labelled_answers(decisions, events)] == [("u", "good")]


def test_a_weight_of_two_is_a_row_seen_twice() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 3))
    y = (rng.random(80) < 1 / (1 + np.exp(-x[:, 0]))).astype(float)
    weights = np.where(np.arange(80) < 20, 2.0, 1.0)
    w_weighted, b_weighted = _fit_logistic(x, y, 1.0, weights)
    w_twice, b_twice = _fit_logistic(np.vstack([x, x[:20]]), np.concatenate([y, y[:20]]), 1.0)
    np.testing.assert_allclose(w_weighted, w_twice, atol=1e-6)
    assert b_weighted == pytest.approx(b_twice, abs=1e-6)
    assert not np.allclose(_fit_logistic(x, y, 1.0)[0], w_weighted)


def _offering(ws: Workspace) -> None:
    """Every judged unified answer gets an expert-mode offer: a threshold of 1 and offers at any category
    probability (the tiny models' confidence is whatever it is)."""
    path = ws.configs / "model_config.yaml"
    text = path.read_text()
    text = text.replace("confidence_threshold: 0.7", "confidence_threshold: 1.0")
    text = text.replace("offer_below_category_probability: 0.6", "offer_below_category_probability: 1.0")
    text = text.replace("require_grounds: true", "require_grounds: false")
    path.write_text(text)


def test_ratings_said_and_implied_reach_the_log_and_the_exported_pairs(confident_ws: Workspace, tmp_path: Path) -> None:
    from pz2.runtime.assistant import Assistant, UnknownTurn

    ws = copy_workspace(confident_ws, tmp_path)
    shutil.rmtree(ws.assistant_logs, ignore_errors=True)   # other tests' turns and ratings
    _offering(ws)
    assistant = Assistant.from_config(ws, ws.model_config())
    try:
        asked = assistant.ask("How do I undo a commit in git?", session="s")
        assert asked.route == "offer" and asked.features and asked.record()["features"] == asked.features
        accepted = assistant.ask("yes, expert mode please", session="s")
        assert accepted.route == "specialist" and accepted.follows == asked.id
        declined = assistant.ask("What causes the seasons?", session="t")
        assert declined.route == "offer" and assistant.decline("t") and not assistant.decline("t")
        plain = assistant.ask("Why is the sky blue?", session="u")
        again = assistant.ask("expert mode", session="u")   # offered or not, asked for: the answer was not enough
        assert again.follows == plain.id
        again_how = "offer_accepted" if plain.route == "offer" else "expert_request"
        assistant.feedback(accepted.id, "good", "api", "clear steps")
        with pytest.raises(UnknownTurn):
            assistant.feedback("nope", "good", "api")
        with pytest.raises(ValueError, match="rating"):
            assistant.feedback(plain.id, "meh", "api")
    finally:
        assistant.close()
    events = [Feedback.from_record(r) for r in read_log(ws.assistant_logs / FEEDBACK_FILE)]
    assert [(e.turn, e.rating, e.how) for e in events] == [
        (asked.id, "bad", "offer_accepted"), (declined.id, "good", "offer_declined"),
        (plain.id, "bad", again_how), (accepted.id, "good", "api")]
    assert events[-1].comment == "clear steps" and events[0].implicit and not events[-1].implicit
    decisions = read_log(ws.assistant_logs / "decisions.jsonl")
    assert {asked.id, accepted.id, declined.id, plain.id, again.id} <= {r["id"] for r in decisions}

    out = tmp_path / "pairs.jsonl"
    before = (ws.assistant_logs / FEEDBACK_FILE).read_bytes()
    result = CliRunner().invoke(app, ["--workspace", str(ws.root), "data", "feedback", "--output", str(out)])
    assert result.exit_code == 0, result.output
    pairs = [json.loads(line) for line in out.read_text().splitlines()]
    expected = {("How do I undo a commit in git?", accepted.answer, asked.answer),
                ("Why is the sky blue?", again.answer, plain.answer)}
    assert {(p["prompt"][0]["content"], p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs} == {
        (q, chosen, rejected) for q, chosen, rejected in expected if chosen != rejected}
    assert pairs, "the tiny models' answers differ"
    assert all(_is_trl_conversational_preference(p) for p in pairs)
    assert (ws.assistant_logs / FEEDBACK_FILE).read_bytes() == before, "inputs are never modified"
    refused = CliRunner().invoke(app, ["--workspace", str(ws.root), "data", "feedback", "--output",
                                       str(ws.assistant_logs / FEEDBACK_FILE)])
    assert refused.exit_code == 2 and (ws.assistant_logs / FEEDBACK_FILE).read_bytes() == before


def test_the_api_takes_a_rating_by_response_id_with_auth_and_bad_input_refused(serve_ws: Workspace, tmp_path: Path) -> None:
    from pz2.runtime.assistant import Assistant
    from pz2.serving.app import create_app

    ws = copy_workspace(serve_ws, tmp_path)
    shutil.rmtree(ws.assistant_logs, ignore_errors=True)   # other tests' turns and ratings
    api = create_app(lambda: Assistant.from_config(ws, ws.model_config()), ServingConfig(), "tiny-base", "k3y")
    auth = {"Authorization": "Bearer k3y"}
    with live_server(api) as url:
        wait_healthy(url)
        answer = httpx.post(f"{url}/v1/chat/completions", headers=auth, timeout=60, json={
            "model": "pz2-hybrid", "messages": [{"role": "user", "content": "What is TCP?"}]}).json()
        assert answer["id"] == f"chatcmpl-{answer['pz2']['id']}"
        with httpx.stream("POST", f"{url}/v1/chat/completions", headers=auth, timeout=60, json={
                "model": "unified", "stream": True, "messages": [{"role": "user", "content": "hi"}]}) as r:
            chunks = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]
        streamed = chunks[-1]["id"]
        assert {c["id"] for c in chunks} == {streamed} and streamed == f"chatcmpl-{chunks[-1]['pz2']['id']}"

        def rate(body: dict, headers: dict = auth) -> httpx.Response:
            return httpx.post(f"{url}/v1/feedback", headers=headers, json=body, timeout=30)

        assert rate({"id": answer["id"], "rating": "good"}, {}).status_code == 401
        unknown = rate({"id": "chatcmpl-0000", "rating": "bad"})
        assert unknown.status_code == 404 and unknown.json()["error"]["param"] == "id"
        for bad in ({"id": answer["id"], "rating": "5 stars"}, {"id": answer["id"]}, {"rating": "good"},
                    {"id": answer["id"], "rating": "good", "comment": "x" * 3000}):
            r = rate(bad)
            assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error", bad
        ok = rate({"id": answer["id"], "rating": "bad", "comment": "wrong protocol"})
        assert ok.status_code == 200 and ok.json() == {"object": "feedback", "id": answer["id"], "rating": "bad"}
        assert rate({"id": streamed.removeprefix("chatcmpl-"), "rating": "good"}).status_code == 200   # the bare id too
    logged = [(r["turn"], r["rating"], r["how"], r.get("comment")) for r in read_log(ws.assistant_logs / FEEDBACK_FILE)]
    assert logged == [(answer["pz2"]["id"], "bad", "api", "wrong protocol"), (chunks[-1]["pz2"]["id"], "good", "api", None)]


PAIRS = [("What is TCP?", "A transport protocol that delivers bytes in order.", "A fruit."),
         ("How do I undo a commit in git?", "git reset --soft HEAD~1", "git undo"),
         ("What is the capital of France?", "Paris.", "Lyon."),
         ("How do I list files in Linux?", "ls -la", "dir /s")]


@pytest.mark.slow
def test_the_exported_pairs_train_trls_dpo_trainer(tiny_base: Path, tmp_path: Path) -> None:
    """The export is what TRL reads: the file loads with `datasets`, TRL calls each row conversational, and its
    DPOTrainer trains on them (the tiny base, the embedded base's chat template), pushing chosen over rejected."""
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer
    from trl.data_utils import is_conversational, maybe_apply_chat_template

    from pz2.fileio import atomic_write_jsonl

    decisions = [_turn(f"q{i}", q, bad) for i, (q, _, bad) in enumerate(PAIRS)]
    decisions += [_turn(f"e{i}", q, good, follows=f"q{i}", specialist="qna") for i, (q, good, _) in enumerate(PAIRS)]
    events = [Feedback(f"q{i}", "bad", "offer_accepted") for i in range(len(PAIRS))]
    path = tmp_path / "pairs.jsonl"
    atomic_write_jsonl(path, preference_pairs(decisions, events))
    rows = load_dataset("json", data_files=str(path), split="train")
    assert len(rows) == len(PAIRS) and all(is_conversational(row) for row in rows)
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    templated = maybe_apply_chat_template(rows[0], tokenizer)
    assert PAIRS[0][0] in templated["prompt"] and templated["chosen"].startswith(PAIRS[0][1])
    args = DPOConfig(output_dir=str(tmp_path / "dpo"), max_steps=3, per_device_train_batch_size=2, learning_rate=1e-2,
                     logging_steps=1, save_strategy="no", report_to=[], use_cpu=True, max_length=64, seed=0)
    trainer = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_base), args=args, train_dataset=rows,
                         processing_class=tokenizer)
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "rewards/margins" in entry]
    assert len(logged) == 3 and logged[-1]["rewards/margins"] > 0

