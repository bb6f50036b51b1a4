"""Answers a person can use (issue 24): an answer that runs out of tokens ends at its last complete
sentence or list item, never mid-word, streamed or not; and the no-repeat rule lets a grounded answer
copy its passage exactly, without gluing or splitting words."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer, LlamaForCausalLM

from pz2.config import EngineConfig
from pz2.knowledge.grounding import PROMPT_FRAMING, Grounded, Passage, grounded_message
from pz2.runtime.assistant import grounded_sampling
from pz2.runtime.ending import SentenceHold, complete_part, ends_mid_sentence, last_boundary
from pz2.runtime.engine import BANNED, Sampling, StopScanner, control_repetition, ngram_counts, space_twins


@pytest.mark.parametrize("cut,kept", [
    ("Select the Line tool. Then click two points, or type a length and angle, such as @1",
     "Select the Line tool."),
    ("Steps:\n1. Open the file.\n2. Click Solid tools.\n5.", "Steps:\n1. Open the file.\n2. Click Solid tools."),
    ("1. Press B to open the Paint Bucket.\n2. Choose a material\n3. Solid tools (Union, Subtract, Inter",
     "1. Press B to open the Paint Bucket.\n2. Choose a material"),
    ("Use Python 3.11 or later, e.g. from python.org", "Use Python 3.11 or later, e.g. from"),
    ("It said \"Done.\" Then it cra", "It said \"Done.\""),
    ("모델을 저장하세요. 그 다음에 내보내기를", "모델을 저장하세요."),
    ("git reset --soft HEAD~1", "git reset --soft"),
    ("abcdefghijk", "abcdefghijk"),
])
def test_a_cut_answer_keeps_its_complete_sentences_and_list_items_never_half_a_word(cut: str, kept: str) -> None:
    assert complete_part(cut) == kept and ends_mid_sentence(cut)
    assert ends_mid_sentence(kept) == (not kept.endswith((".", '"'))), "a list item or command without a period counts"


def test_boundaries_are_sentence_ends_and_line_ends_not_list_numbers_or_abbreviations() -> None:
    assert last_boundary("One. Two") == len("One.")
    assert last_boundary("Intro\n1.") == len("Intro\n")
    assert last_boundary("See e.g. this") == 0 and last_boundary("Version 3.11 is out") == 0
    assert not ends_mid_sentence("Done!") and not ends_mid_sentence('He said "yes."') and ends_mid_sentence("half a sen")


def test_the_stream_holds_back_the_unfinished_tail_and_releases_what_the_answer_keeps() -> None:
    pieces = ["Open the", " file. Then", " click", " Save.\n2.", " Choose a for"]
    hold = SentenceHold()
    out = [hold.push(p) for p in pieces]
    assert out == ["", "Open the file.", "", " Then click Save.\n", ""]
    assert hold.finish(cut=True) == "" and "".join(out) == "Open the file. Then click Save.\n"
    natural = SentenceHold()
    streamed = "".join(natural.push(p) for p in pieces) + natural.finish(cut=False)
    assert streamed == "".join(pieces) == natural.text


def test_a_passage_ngram_is_copied_exactly_and_a_self_repeat_is_still_blocked() -> None:
    logits = np.arange(10, dtype=np.float32)
    answer = [1, 2, 3, 1, 2]                 # (1, 2, 3) written once: after (1, 2), 3 would repeat it
    assert control_repetition(logits, answer, 3, 1.0)[3] == BANNED
    passage = ngram_counts([7, 1, 2, 3, 8, 1, 2, 3], 3)   # ... but the passage has it twice: so may a copy
    assert control_repetition(logits, answer, 3, 1.0, passage)[3] == logits[3]
    twice = [1, 2, 3, 1, 2, 3, 1, 2]             # and no more: a loop over a quoted phrase still stops
    assert control_repetition(logits, twice, 3, 1.0, passage)[3] == BANNED
    assert control_repetition(logits, answer, 3, 1.0, ngram_counts([1, 2, 3], 3))[3] == BANNED   # quoted once: once


def test_a_banned_word_takes_its_glued_twin_along(tiny_base: Path) -> None:
    """"Web APIs usually exchange …" written twice: the second " exchange" is banned, and so is "exchange", or
    the answer reads "usuallyexchange"."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    twins = space_twins(tokenizer)
    spaced, bare = tokenizer.convert_tokens_to_ids(["Ġexchange", "exchange"])
    assert twins[spaced] == bare and twins[bare] == spaced
    answer = tokenizer.encode(" usually exchange data and usually", add_special_tokens=False)
    logits = np.zeros(len(twins), dtype=np.float32)
    out = control_repetition(logits, answer, 2, 1.0, None, twins)
    assert out[spaced] == BANNED and out[bare] == BANNED
    passage = ngram_counts(tokenizer.encode(" usually exchange JSON; usually exchange", add_special_tokens=False), 2)
    copying = control_repetition(logits, answer, 2, 1.0, passage, twins)
    assert copying[spaced] == 0, "the copy writes the passage's own words, spaced as there"


def test_stream_and_answer_agree_and_a_cut_answer_ends_at_a_boundary(tiny_base: Path) -> None:
    from pz2.runtime.engine_transformers import TransformersEngine

    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    model = LlamaForCausalLM.from_pretrained(tiny_base).eval()
    closing = TransformersEngine(model, tokenizer, "Be brief.", EngineConfig(max_new_tokens=40))
    raw = TransformersEngine(model, tokenizer, "Be brief.", EngineConfig(max_new_tokens=40, end_on_sentence=False))
    for question in ("Tell me about lines. And circles.", "How do I trim?", "Explain layers in detail."):
        pieces: list[str] = []
        gen = closing.stream(question, None, on_text=pieces.append)
        whole = raw.generate(question)
        assert gen.token_ids == whole.token_ids and gen.finish_reason == whole.finish_reason
        assert "".join(pieces).strip() == gen.text == closing.generate(question).text
        scored = closing.stream(question, None, sampling=Sampling(top_logprobs=0)).token_logprobs
        assert [t.token for t in scored] == [tokenizer.decode([i]) for i in gen.token_ids], "every token generated"
        if gen.finish_reason == "length":
            assert gen.text == complete_part(whole.text).strip()
            assert whole.text.startswith(gen.text) and (len(gen.text) == len(whole.text) or
                                                        not whole.text[len(gen.text)].isalnum() or " " not in whole.text)
        else:
            assert gen.text == whole.text


def test_a_grounded_answer_ends_before_it_writes_its_prompt_again() -> None:
    """8 of 48 grounded answers went on with "Question: <the question> Answer from the sources above ...": the
    framing of the prompt is where a grounded answer stops, and only a grounded one."""
    passages = [Passage(1, "cheat:tar", "tar", "# To extract a .gz archive:\ntar -xzvf file.tar.gz")]
    question = "What tar options extract a .gz archive?"
    message = grounded_message(question, passages)
    assert all(f.strip() in message for f in PROMPT_FRAMING), "the stops are the prompt's own framing"
    api = Sampling(stop=("END",))
    sampling = grounded_sampling(api, question, Grounded(message, passages))
    assert sampling.stop == ("END", *PROMPT_FRAMING) and sampling.quotable == (question, passages[0].text)
    assert grounded_sampling(api, question, Grounded(question)).stop == ("END",)   # no passages, no framing
    scan = StopScanner(sampling.stop)
    echo = "Use tar -xzvf file.tar.gz [1].\n\nQuestion: What tar options extract a .gz archive?"
    kept = ""
    for i in range(0, len(echo), 5):   # streamed in pieces, as the engine pushes them, until it stops
        kept += scan.push(echo[i : i + 5])
        if scan.stopped:
            break
    assert scan.stopped and kept.rstrip() == "Use tar -xzvf file.tar.gz [1]."
