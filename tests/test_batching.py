"""Continuous batching in the llama.cpp engine: answers decoded together are the answers decoded alone.

On these tiny models exactly; on the embedded base with a float32 LoRA adapter a few answers part on a
near-tie, where llama.cpp's products of several rows round differently from one row's (README, "Concurrency").
"""

from __future__ import annotations

import gc
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from pz2.config import EngineConfig
from pz2.runtime.engine import Generation, Sampling
from pz2.runtime.engine_llamacpp import LlamaCppEngine

SYSTEM = "You are a helpful assistant."
QUESTIONS = ["How do I undo a commit?", "What is DNS?", "Draw a line in CAD", "Hello there",
             "Freeze the top row in Excel", "What is a VPN?", "Explain recursion to me", "Rename a file"]


def engine(tiny_base: Path, tiny_gguf: Path, adapters: dict[str, Path], cache: Path, parallel: int) -> LlamaCppEngine:
    e = LlamaCppEngine(tiny_gguf, AutoTokenizer.from_pretrained(tiny_base), SYSTEM,
                       EngineConfig(max_new_tokens=24, threads=2, parallel=parallel, end_on_sentence=False,
                                    flash_attention=False), cache_dir=cache)
    for name in ("a", "b"):
        e.load(name, adapters[name])
    return e


class Calls:
    """A spy on the decoder: per llama.cpp call, which sequences it fed (their slot, adapter and tokens)."""

    def __init__(self, e: LlamaCppEngine) -> None:
        self.calls: list[list[tuple[int, str | None, int]]] = []
        decode = e.decoder._decode

        def spy(parts):
            self.calls.append([(seq.slot, seq.adapter, take) for seq, take in parts])
            return decode(parts)

        e.decoder._decode = spy


def ask(e: LlamaCppEngine, i: int) -> Generation:
    return e.stream(QUESTIONS[i % len(QUESTIONS)], (None, "a", "b")[i % 3])


@pytest.fixture(scope="module")
def alone(tiny_base, tiny_gguf, random_adapters, tmp_path_factory) -> list[Generation]:
    """Each question with its adapter, one at a time, on an engine that decodes one answer at a time."""
    e = engine(tiny_base, tiny_gguf, random_adapters, tmp_path_factory.mktemp("lora"), parallel=1)
    try:
        return [ask(e, i) for i in range(len(QUESTIONS))]
    finally:
        e.close()


def test_answers_decoded_together_are_the_answers_decoded_alone(tiny_base, tiny_gguf, random_adapters, tmp_path,
                                                                alone) -> None:
    e = engine(tiny_base, tiny_gguf, random_adapters, tmp_path, parallel=4)
    spy = Calls(e)
    try:
        with ThreadPoolExecutor(8) as pool:
            together = list(pool.map(lambda i: ask(e, i), range(len(QUESTIONS))))
    finally:
        e.close()
    for one, other in zip(alone, together, strict=True):
        assert other.token_ids == one.token_ids
        assert other.text == one.text and other.finish_reason == one.finish_reason
        assert other.logprobs == pytest.approx(one.logprobs, abs=1e-4)
    answering = [call for call in spy.calls if len(call) > 1]
    assert answering, "no call decoded two answers at once"
    assert all(len({adapter for _, adapter, _ in call}) == 1 for call in spy.calls)   # one adapter per call
    assert all(len({slot for slot, _, _ in call}) == len(call) for call in spy.calls)
    assert max(len(call) for call in spy.calls) <= 4   # never more at once than runtime.engine.parallel


def test_a_new_answer_reads_only_its_own_tokens_beside_a_running_one(tiny_base, tiny_gguf, random_adapters,
                                                                     tmp_path, alone) -> None:
    """The system prompt's KV entries are copied from the slot that has them, whether that answer still runs
    (the second request then takes the slot next to it) or has ended (its own slot is reused)."""
    e = engine(tiny_base, tiny_gguf, random_adapters, tmp_path, parallel=4)
    spy = Calls(e)
    second_done, first_started = threading.Event(), threading.Event()
    try:
        long = Sampling(cancelled=second_done.is_set)   # the first answer runs until the second is done
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(e.stream, "Tell me a long story about the sea", "a", 400,
                                lambda _: first_started.set(), (), None, long)
            assert first_started.wait(60)
            second = ask(e, 1)   # adapter "a" too
            second_done.set()
            assert first.result().finish_reason == "cancelled"
    finally:
        e.close()
    assert second.token_ids == alone[1].token_ids
    prompt = e.prompt(QUESTIONS[1])
    shared = next(k for k, (x, y) in enumerate(zip(prompt, e.prompt("Tell me a long story about the sea"))) if x != y)
    reads = [take for call in spy.calls if len(call) == 1 and call[0][2] > 1 for _, _, take in call]
    assert reads[-1] == len(prompt) - shared   # the second prompt's read: its own tokens only
    slots = {slot for call in spy.calls for slot, _, _ in call}
    assert len(slots) == 2   # side by side, each in its slot


def test_a_failing_answer_leaves_the_others_running(tiny_base, tiny_gguf, random_adapters, tmp_path, alone) -> None:
    e = engine(tiny_base, tiny_gguf, random_adapters, tmp_path, parallel=4)

    def broken(piece: str) -> None:
        raise RuntimeError("the client's callback failed")

    try:
        with ThreadPoolExecutor(4) as pool:
            bad = pool.submit(e.stream, QUESTIONS[0], None, None, broken)
            good = [pool.submit(ask, e, i) for i in (1, 2, 4)]
            with pytest.raises(RuntimeError, match="callback failed"):
                bad.result()
            assert [g.result().token_ids for g in good] == [alone[i].token_ids for i in (1, 2, 4)]
        assert ask(e, 3).token_ids == alone[3].token_ids   # the engine goes on
    finally:
        e.close()


def test_a_dropped_engine_stops_its_decoder_and_is_freed(tiny_base, tiny_gguf, random_adapters, tmp_path, alone) -> None:
    """Nothing of an answered request keeps the engine alive: engines built one after another (the demo, the
    evaluations) do not pile up their models and KV caches."""
    e = engine(tiny_base, tiny_gguf, random_adapters, tmp_path, parallel=2)
    assert ask(e, 1).token_ids == alone[1].token_ids
    thread, ref = e.decoder._thread, weakref.ref(e)
    del e
    gc.collect()
    assert ref() is None
    thread.join(10)
    assert not thread.is_alive()
