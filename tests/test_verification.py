"""The unified answer checked against the knowledge base (runtime/verification.py): real MiniLM embeddings,
a real FAISS + BM25 index built from documents written here."""

from __future__ import annotations

from pathlib import Path

import pytest

from pz2.config import KnowledgeConfig, ModelConfig, RetrievalConfig, TrainingConfig
from pz2.knowledge.build import build_knowledge
from pz2.knowledge.documents import categories_of
from pz2.knowledge.index import KnowledgeIndex
from pz2.knowledge.retrieval import Retriever
from pz2.models.sentence import SentenceEncoder
from pz2.runtime.verification import CHECK_FEATURES, check, support

FACTS = {
    "france.md": "# France\n\nThe capital of France is Paris. Paris lies on the river Seine and has about two million "
                 "inhabitants.\n",
    "printer.md": "# Printer jams\n\nOpen the front cover and pull the jammed sheet out slowly with both hands.\n",
}


@pytest.fixture(scope="module")
def retriever(tmp_path_factory: pytest.TempPathFactory) -> Retriever:
    cfg = ModelConfig(cache_dir=tmp_path_factory.mktemp("cache"))
    encoder = SentenceEncoder.load(cfg)
    docs = tmp_path_factory.mktemp("docs")
    for name, text in FACTS.items():
        (docs / name).write_text(text, encoding="utf-8")
    folder = tmp_path_factory.mktemp("kb") / "knowledge"
    build_knowledge(folder, KnowledgeConfig(collections=[], chunk_chars=300), TrainingConfig(), encoder, [docs])
    return Retriever(KnowledgeIndex.load(folder), encoder, RetrievalConfig(min_similarity=0.35))


def test_an_answer_that_contradicts_its_passage_scores_lower_than_one_that_agrees(retriever: Retriever) -> None:
    question = "What is the capital of France?"
    right = check(retriever, question, "The capital of France is Paris, on the Seine.", "qna")
    wrong = check(retriever, question, "The capital of France is Marseille, a port on the Mediterranean.", "qna")
    assert right.path == wrong.path and right.path.endswith("france.md")
    assert right.similarity == wrong.similarity and right.grounds
    assert right.agreement > wrong.agreement
    assert right.support > wrong.support and right.support == 1.0
    assert len(right.features()) == len(CHECK_FEATURES) and right.features()[0] == 1.0


def test_a_question_the_knowledge_base_cannot_help_with_has_no_grounds(retriever: Retriever) -> None:
    far = check(retriever, "Who won the football world cup in 1930?", "Uruguay won it.", "qna")
    assert not far.grounds and far.similarity < 0.35
    record = far.record()
    assert record["grounds"] is False and record["ms"] > 0 and set(record) >= {"similarity", "agreement", "support"}


def test_support_leaves_out_what_the_answer_repeats_of_the_question(retriever: Retriever) -> None:
    stemmer = retriever.index.stemmer
    passage = "Open the front cover and pull the jammed sheet out."
    assert support("Printer jams happen.", "How do I fix printer jams?", passage, stemmer) == 0.0  # nothing of its own
    assert support("Open the front cover.", "How do I fix printer jams?", passage, stemmer) == 1.0


def test_a_passage_covers_the_categories_its_collection_holds() -> None:
    assert categories_of("banks:qna/gravity") == ("qna",)
    assert categories_of("banks:technical/excel_pivot") == ("technical",)
    assert categories_of("chatterbot-corpus:tech_support") == ("technical",)
    assert categories_of("chatterbot-corpus:trivia") == ("qna",)
    assert categories_of("cheat:tar") == categories_of("python_docs:if") == ("technical",)
    assert set(categories_of(str(Path("/docs/manual.md")))) == {"qna", "technical"}


def test_one_search_serves_the_check_and_the_grounding(retriever: Retriever) -> None:
    from transformers import AutoTokenizer

    from pz2.models.prepare import embedded_tokenizer_dir

    tokenizer = AutoTokenizer.from_pretrained(embedded_tokenizer_dir(ModelConfig(cache_dir=Path("~/.cache/pz2"))))
    question = "How do I clear a paper jam?"
    checked = check(retriever, question, "Pull the sheet out.", "technical")
    reused = retriever.ground(question, tokenizer, found=checked.search)
    fresh = retriever.ground(question, tokenizer)
    assert reused.message == fresh.message and reused.ms == round(checked.search.ms, 2)


def test_hidden_passages_leave_the_check_of_a_question_the_knowledge_base_does_not_cover(retriever: Retriever) -> None:
    question = "What is the capital of France?"
    covered = check(retriever, question, "Paris.", "qna")
    uncovered = check(retriever, question, "Paris.", "qna", hide=lambda text: "paris" in text.lower())
    assert covered.path.endswith("france.md") and covered.grounds
    assert not uncovered.path.endswith("france.md") and not uncovered.grounds
    assert uncovered.similarity < covered.similarity and uncovered.support == 0.0
