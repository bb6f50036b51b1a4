"""What a turn leaves between turns: the memory recalled from a stateless conversation, and the decisions log."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from pz2.runtime.append_log import AppendLog
from pz2.runtime.language import OFFER_TEXT
from pz2.runtime.prediction import Prediction
from pz2.runtime.session import recall

QNA = Prediction("qna", 0.9, {"qna": 0.9, "technical": 0.05, "general": 0.05}, None)


def test_a_conversation_sent_whole_is_recalled_as_the_session_would_remember_it() -> None:
    """The API is stateless: the last question, offered expert mode only when the reply after it ends with
    the offer, and how many messages precede it (a re-asked question drops its first answer)."""
    asked: list[str] = []

    def classify(text: str) -> Prediction:
        asked.append(text)
        return QNA

    offered = ({"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
               {"role": "user", "content": "What is TCP?"},
               {"role": "assistant", "content": f"A protocol. {OFFER_TEXT['en']}"})
    session, before = recall(offered, classify)
    assert session.last == ("What is TCP?", QNA) and session.offer == session.last and before == 2
    assert asked == ["What is TCP?"], "only the last question is classified"
    plain = offered[:3] + ({"role": "assistant", "content": "A protocol."},)
    session, before = recall(plain, classify)
    assert session.last == ("What is TCP?", QNA) and session.offer is None and before == 2
    session, before = recall(({"role": "system", "content": "be brief"},), classify)
    assert (session.last, session.offer, before) == (None, None, 0)


def test_the_decisions_log_keeps_every_record_whole_under_concurrent_turns(tmp_path: Path) -> None:
    log = AppendLog(tmp_path / "logs" / "decisions.jsonl")
    long = "x" * 20_000    # well past a pipe's atomic size: one write per record still keeps lines whole

    def turns(worker: int) -> None:
        for i in range(50):
            log.write({"worker": worker, "i": i, "answer": long, "message": "네"})

    threads = [threading.Thread(target=turns, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = [json.loads(line) for line in log.path.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 200 and all(r["answer"] == long and r["message"] == "네" and "time" in r for r in records)
    assert sorted((r["worker"], r["i"]) for r in records) == [(w, i) for w in range(4) for i in range(50)]


def test_a_record_after_a_cut_line_starts_a_line_of_its_own(tmp_path: Path) -> None:
    """A kill mid-write leaves the last line cut; the next record must not be glued to it."""
    log = AppendLog(tmp_path / "decisions.jsonl")
    log.write({"i": 1})
    with log.path.open("ab") as f:
        f.write(b'{"i": 2, "answer": "cut mid')      # what a SIGKILL leaves
    log.write({"i": 3})
    lines = log.path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["i"] == 1 and json.loads(lines[2])["i"] == 3
