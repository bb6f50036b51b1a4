"""`pz2 eval kb` on the tiny hybrid workspace: the figures agree with the answers they came from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pz2.config import KnowledgeConfig, TrainingConfig
from pz2.errors import DatasetError, ModelError
from pz2.evaluation.grounded import GROUNDED_QUESTIONS, evaluate_grounding, load_grounded
from pz2.knowledge.build import build_knowledge
from pz2.models.sentence import SentenceEncoder
from pz2.workspace import Workspace

ROWS = [
    {"question": "Which key opens the Paint Bucket in SketchUp?", "answers": ["B"], "category": "technical",
     "source": "banks:technical/SketchUp:apply materials and textures"},
    {"question": "What tar options extract a gzip archive?", "answers": ["tar -xzvf"], "category": "technical",
     "source": "cheat:tar"},
    {"question": "Which ocean is the biggest?", "answers": ["Pacific"], "category": "qna",
     "source": "banks:qna/the largest ocean on Earth"},
]


@pytest.fixture(scope="module")
def kb_ws(hybrid_ws: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    import shutil

    root = tmp_path_factory.mktemp("kb-eval") / "finetuning"
    shutil.copytree(hybrid_ws.root, root, ignore=shutil.ignore_patterns("checkpoints", "training_logs"))
    ws = Workspace(root)
    encoder = SentenceEncoder.load(ws.model_config())
    build_knowledge(ws.knowledge, KnowledgeConfig(collections=["banks", "cheat"]), TrainingConfig(), encoder)
    return ws


def test_eval_kb_figures_match_its_answers(kb_ws: Workspace, tmp_path: Path) -> None:
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    out = tmp_path / "run"
    m = evaluate_grounding(kb_ws, kb_ws.model_config(), out, load_grounded(data), resamples=100)
    assert {p.name for p in out.iterdir()} == {"metrics.json", "answers.jsonl", "report.md"}
    assert json.loads((out / "metrics.json").read_text()) == json.loads(json.dumps(m))
    records = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    assert len(records) == len(ROWS)
    ranks = [r["retrieval_rank"] for r in records]
    assert m["retrieval"]["recall@10"] == sum(r is not None for r in ranks) / len(ROWS)
    assert m["retrieval"]["mrr@10"] == pytest.approx(sum(1 / r for r in ranks if r) / len(ROWS))
    assert set(m["models"]) == {"qna", "technical", "unified", "base"}
    assert m["models"]["technical"]["with"]["n"] == 2 and m["models"]["unified"]["with"]["n"] == 3
    for model in m["models"]:
        for mode in ("without", "with"):
            answers = [r[f"{model}_{mode}"] for r in records if f"{model}_{mode}" in r]
            assert m["models"][model][mode]["factual_accuracy"] == pytest.approx(
                sum(a["right"] for a in answers) / len(answers))
            assert all(a["passages"] == [] for a in answers) if mode == "without" else True
    grounded = [r["technical_with"] for r in records if "technical_with" in r]
    assert all(a["passages"] or a["no_source"] for a in grounded)
    assert set(m["targets"]) == {"factual_accuracy_with_retrieval >= 0.85", "factual_accuracy >= 1.5x without retrieval",
                                 "repeated_4gram <= 0.02", "retrieval p50 <= 30 ms"}
    assert "| recall@1 |" in (out / "report.md").read_text()


def test_eval_kb_on_questions_of_one_category_measures_that_specialist(kb_ws: Workspace, tmp_path: Path) -> None:
    """The general-knowledge set is all qna: the technical specialist has nothing to answer (it crashed)."""
    rows = [ROWS[2], {"question": "What is the capital of Canada?", "answers": ["Ottawa"], "category": "qna",
                      "source": ""}]
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    m = evaluate_grounding(kb_ws, kb_ws.model_config(), tmp_path / "run", load_grounded(data), ("specialists",),
                           resamples=100)
    assert set(m["models"]) == {"qna"} and m["models"]["qna"]["with"]["n"] == 2


def test_eval_kb_refuses_an_index_that_holds_its_questions(kb_ws: Workspace, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "faq.md").write_text("# FAQ\n\nWhich ocean is the biggest? The Pacific.\n")
    ws = Workspace(tmp_path / "finetuning", kb_ws.models)
    import shutil

    shutil.copytree(kb_ws.configs, ws.configs)
    build_knowledge(ws.knowledge, KnowledgeConfig(collections=[]), TrainingConfig(),
                    SentenceEncoder.load(ws.model_config()), [docs])
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps(ROWS[2]) + "\n")
    with pytest.raises(ModelError, match="holds 1 evaluation question"):
        evaluate_grounding(ws, ws.model_config(), tmp_path / "run", load_grounded(data))
    assert not (tmp_path / "run").exists()


def test_a_question_is_in_the_index_when_a_passage_asks_it_not_when_a_passage_answers_it() -> None:
    """The leak check finds a question where a passage starts a sentence or clause with it (a FAQ pair, a
    question quoted after a colon, a question of two sentences), not its words inside a sentence that answers
    it: WordNet's "bacteriologist who discovered penicillin" is the answer to "Who discovered penicillin?"."""
    from types import SimpleNamespace

    from pz2.evaluation.grounded import questions_in_index

    index = SimpleNamespace(chunks=[SimpleNamespace(text=t) for t in (
        "Fleming, Alexander Fleming (bacteriologist): Scottish bacteriologist who discovered penicillin (1881-1955)",
        "# FAQ\n\nWhich ocean is the biggest? The Pacific.",
        "Users ask: I use Excel at work. How do I freeze the top row? Select View, then Freeze Panes.")])
    asked = ["Who discovered penicillin?", "which ocean is the BIGGEST", "I use Excel at work. How do I freeze the top row?",
             "How do I freeze the top row?", "Which ocean is the biggest one?", "What is penicillin?"]
    assert questions_in_index(index, asked) == ["which ocean is the BIGGEST",
                                                "I use Excel at work. How do I freeze the top row?",
                                                "How do I freeze the top row?"]


def test_the_packaged_questions_load_and_a_bad_row_names_its_line(tmp_path: Path) -> None:
    rows = load_grounded(GROUNDED_QUESTIONS)
    assert len(rows) == 48 and {r.category for r in rows} == {"qna", "technical"}
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(ROWS[0]) + "\n" + json.dumps({**ROWS[0], "answers": []}) + "\n")
    with pytest.raises(DatasetError, match=r"bad.jsonl:2: needs"):
        load_grounded(bad)


def test_the_general_questions_are_untrained_and_count_a_passage_holding_the_answer(tmp_path: Path) -> None:
    """The 100 general-knowledge questions (issue 24, item 4; written on facts outside the banks' topics): none
    is a question of the generated training data, and where no document is known, retrieval counts the first
    passage that holds the answer."""
    from pz2.config import DataConfig, ModelConfig
    from pz2.data.generate import generate
    from pz2.data.jsonl import read_jsonl
    from pz2.data.schema import normalize
    from pz2.evaluation.grounded import GENERAL_QUESTIONS
    from pz2.knowledge.chunking import Chunk
    from pz2.knowledge.index import Hit

    rows = load_grounded(GENERAL_QUESTIONS)
    assert len(rows) == 100 and len({r.question for r in rows}) == 100 and {r.category for r in rows} == {"qna"}
    assert all(r.source == "" for r in rows)
    generate(DataConfig(), ModelConfig().system_prompt, tmp_path)
    trained = {normalize(r["input_text"]) for f in tmp_path.glob("*_train.jsonl") for r in read_jsonl(f)
               if "input_text" in r}
    assert trained and not [r.question for r in rows if normalize(r.question) in trained]

    def hit(path: str, text: str) -> Hit:
        return Hit(Chunk("id", path, "title", 1, 2, text, "banks", "train"), 0.0, 0.5, 0.0)

    ottawa = next(r for r in rows if r.question == "What is the capital of Canada?")
    assert ottawa.found_in(hit("anything.md", "Ottawa is the capital of Canada."))
    assert not ottawa.found_in(hit("anything.md", "Toronto is the largest city of Canada."))
    known = ROWS[0]
    row = type(ottawa)(known["question"], tuple(known["answers"]), known["category"], known["source"])
    assert row.found_in(hit(known["source"], "no answer here")) and not row.found_in(hit("other", "B"))
