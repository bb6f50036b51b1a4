"""The authors' held-out short-answer questions measure where users ask only if nothing trained on them and
the knowledge base does not hold them: checked against every generated split, the imported corpora and the
text of every built-in collection the index is built from (asked there, as `pz2 eval kb`'s leak check reads it:
WordNet's "bacteriologist who discovered penicillin" answers a held-out question, it does not ask it)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from pz2.config import DataConfig, ModelConfig, TrainingConfig
from pz2.data.generate import generate
from pz2.data.jsonl import read_jsonl
from pz2.data.real import chatterbot_rows, chitchat_rows
from pz2.data.schema import normalize, parse_unified
from pz2.evaluation.answer_quality import is_short_answer
from pz2.evaluation.eval_set import HELD_OUT, load_file
from pz2.evaluation.grounded import questions_in_index
from pz2.knowledge.documents import COLLECTIONS, builtin_documents


def test_the_held_out_questions_are_short_answer_rows_of_both_specialist_categories() -> None:
    rows = [row for path in HELD_OUT for row in load_file(path)]
    assert len(rows) >= 150 and {r.category for r in rows} == {"qna", "technical"}
    assert all(is_short_answer(r.references[0], 5) for r in rows)
    assert len({normalize(r.question) for r in rows}) == len(rows)
    assert all(r.source.startswith("pz2-authors:held-out:") for r in rows)


def test_no_held_out_question_is_in_training_data_a_corpus_or_the_knowledge_bases_text(tmp_path: Path) -> None:
    questions = {normalize(r.question) for path in HELD_OUT for r in load_file(path)}
    generate(DataConfig(), ModelConfig().system_prompt, tmp_path)   # the default data, as `pz2 data generate` writes it
    trained = set()
    for f in tmp_path.glob("*.jsonl"):
        for row in read_jsonl(f):
            text = row.get("text") or parse_unified(row["input_text"])[1]
            trained.add(normalize(text))
    assert not questions & trained
    assert not questions & {normalize(r.text) for r in chatterbot_rows() + chitchat_rows()}
    documents = SimpleNamespace(chunks=builtin_documents(COLLECTIONS, TrainingConfig()))
    assert questions_in_index(documents, [r.question for path in HELD_OUT for r in load_file(path)]) == []


def test_the_questions_written_for_the_confidence_fit_are_not_the_held_out_ones() -> None:
    from pz2.runtime.confidence_fit import FIT_QUESTIONS, human_questions

    held_out = {normalize(r.question) for path in HELD_OUT for r in load_file(path)}
    written = read_jsonl(FIT_QUESTIONS)
    assert len(written) >= 100 and {r["category"] for r in written} == {"qna", "technical"}
    assert not held_out & {normalize(r["input_text"]) for r in written}
    fit = human_questions(400, 0, None)
    assert not held_out & {normalize(q.text) for q in fit}
    assert {q.source for q in fit} >= {r["source"] for r in written}   # every written question is used
