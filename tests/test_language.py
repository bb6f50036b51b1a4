"""A question in Korean, for the English-only default (issue 24, item 3): the glossary's English lets the
encoder find its passage (seed scenario 2 finds SketchUp's curved surfaces, not materials), the models read
an English rendering of it, and the answer says in one Korean line why it is in English."""

from __future__ import annotations

from pathlib import Path

from conftest import copy_workspace

from pz2.config import RetrievalConfig
from pz2.data.glossary import expand_query, gloss
from pz2.knowledge.retrieval import Retriever
from pz2.runtime.language import ENGLISH_NOTICE, english_rendering
from pz2.workspace import Workspace

SCENARIO_2 = "SketchUp에서 복잡한 곡면 모델링하는 고급 기법을 알려줘"


def test_the_glossary_reads_korean_stems_inside_words_longest_first() -> None:
    assert gloss(SCENARIO_2) == "complex curved surfaces modeling advanced techniques"
    assert gloss("오토캐드에서 객체를 복사하는 방법") == "AutoCAD copy how to", "not CAD: the longer name wins"
    assert gloss("선택한 것을 표시") == "", "one-syllable words hide inside others: not in the glossary"
    assert expand_query("How do I trim?") == "How do I trim?"
    assert expand_query("엑셀 수식 오류") == "엑셀 수식 오류 (Excel formula error)"
    assert english_rendering(SCENARIO_2) == "SketchUp complex curved surfaces modeling advanced techniques?"
    assert english_rendering("오늘 날씨 어때?") is None and english_rendering("What is TCP?") is None


def test_scenario_2_finds_the_passage_on_curved_surfaces(banks_kb) -> None:
    index, encoder = banks_kb
    retriever = Retriever(index, encoder, RetrievalConfig())
    top = retriever.search(SCENARIO_2).hits[0]
    assert top.chunk.title == "SketchUp: model complex curved surfaces" and top.similarity >= retriever.cfg.min_similarity
    bare = retriever.index.search(encoder.embed([SCENARIO_2])[0], SCENARIO_2, 3, retriever.cfg.candidates)
    assert bare[0].similarity < top.similarity, "the Korean alone reads worse to the English encoder"


def test_the_answer_to_a_partly_read_question_is_english_and_says_why(confident_ws: Workspace, tmp_path: Path) -> None:
    from pz2.runtime.assistant import Assistant
    from pz2.runtime.turn import Options

    ws = copy_workspace(confident_ws, tmp_path)
    assistant = Assistant.from_config(ws, ws.model_config(), log=False)
    try:
        pieces: list[str] = []
        turn = assistant.ask(SCENARIO_2, on_text=lambda _, piece: pieces.append(piece), options=Options(model="unified"))
        english = assistant.ask("SketchUp complex curved surfaces modeling advanced techniques?", session="other",
                                options=Options(model="unified"))
    finally:
        assistant.close()
    notice = ENGLISH_NOTICE["ko"]
    assert turn.answer.endswith(f"\n{notice}") and "".join(pieces).strip() == turn.answer
    assert turn.unified_answer == english.answer, "the model read the English rendering"
    assert turn.question == SCENARIO_2 and not english.answer.endswith(notice)
