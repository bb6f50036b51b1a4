"""The specialist pool on the real llama.cpp engine: LRU under a budget, concurrency, failures, preload."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from pz2.config import EngineConfig
from pz2.runtime.engine_llamacpp import LlamaCppEngine
from pz2.runtime.pool import (
    FAILED,
    LOADED,
    UNLOADED,
    SpecialistPool,
    SpecialistUnavailable,
)


@pytest.fixture
def engine(tiny_base: Path, tiny_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> LlamaCppEngine:
    tok = AutoTokenizer.from_pretrained(tiny_base)
    return LlamaCppEngine(tiny_gguf, tok, "You are a helpful assistant.", EngineConfig(max_new_tokens=10, threads=1, no_repeat_ngram_size=0),
                          cache_dir=tmp_path_factory.getbasetemp() / "pool-lora-cache")


def adapter_mb(engine: LlamaCppEngine, path: Path) -> float:
    return engine.lora_gguf(path).stat().st_size / 2**20


def test_least_recently_used_specialist_leaves_when_the_budget_is_full(engine, random_adapters) -> None:
    size = adapter_mb(engine, random_adapters["a"])
    pool = SpecialistPool(engine, random_adapters, budget_mb=2.5 * size)  # room for two
    for name in ("a", "b"):
        with pool.use(name) as how:
            assert how == "loaded"
    with pool.use("a") as how:  # a is now the most recently used
        assert how == "hit"
    with pool.use("c"):
        pass
    assert pool.evictions == ["b"]
    assert (pool.state("a"), pool.state("b"), pool.state("c")) == (LOADED, UNLOADED, LOADED)
    assert sorted(engine.loaded()) == ["a", "c"]
    assert pool.snapshot()["used_mb"] <= 2.5 * size


def test_a_specialist_in_use_is_never_evicted(engine, random_adapters) -> None:
    size = adapter_mb(engine, random_adapters["a"])
    pool = SpecialistPool(engine, random_adapters, budget_mb=1.5 * size)  # room for one
    with pool.use("a"):
        with pool.use("b"):  # over budget while both are pinned
            assert sorted(engine.loaded()) == ["a", "b"]
            assert engine.generate("hi", "a").token_ids  # a still answers
        assert pool.state("b") == UNLOADED  # released first while a is still in use: b leaves
    assert pool.state("a") == LOADED and engine.loaded() == ["a"]


def test_concurrent_requests_never_get_each_others_adapter(engine, random_adapters) -> None:
    pool = SpecialistPool(engine, random_adapters, budget_mb=1.5 * adapter_mb(engine, random_adapters["a"]))
    questions = ["How do I trim in AutoCAD?", "What is entropy?", "hello"]
    expected = {}
    for name in random_adapters:
        with pool.use(name):
            expected[name] = {q: engine.generate(q, name).token_ids for q in questions}
    assert len({tuple(v[questions[0]]) for v in expected.values()}) == 3, "adapters must be distinguishable"
    start = threading.Barrier(6)

    def ask(i: int) -> tuple[str, str, list[int]]:
        name, question = list(random_adapters)[i % 3], questions[i % len(questions)]
        if i < 6:
            start.wait()
        with pool.use(name):  # budget fits one: loads and evictions interleave with generations
            return name, question, engine.generate(question, name).token_ids

    with ThreadPoolExecutor(max_workers=6) as ex:
        results = list(ex.map(ask, range(36)))
    assert all(ids == expected[name][q] for name, q, ids in results)
    assert len(pool.evictions) > 3  # the budget forced switching under load


def test_a_failed_load_is_reported_with_its_reason_and_retried(engine, random_adapters, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "adapter_config.json").write_text("{}")
    pool = SpecialistPool(engine, {"qna": broken, "technical": random_adapters["a"]}, budget_mb=64)
    with pytest.raises(SpecialistUnavailable, match="qna specialist unavailable"), pool.use("qna"):
        pass
    assert pool.state("qna").startswith(FAILED) and "not a PEFT LoRA adapter" in pool.state("qna")
    with pool.use("technical") as how:  # the pool stays usable
        assert how == "loaded"
    pool.paths["qna"] = random_adapters["b"]  # the adapter is fixed: the next request tries again
    with pool.use("qna") as how:
        assert how == "loaded"


def test_preload_loads_in_the_background_and_a_waiting_request_shares_it(engine, random_adapters) -> None:
    pool = SpecialistPool(engine, random_adapters, budget_mb=64)
    future = pool.preload("b")
    assert future is not None
    with pool.use("b") as how:  # either the preload finished (hit) or this request waited for it
        assert how in ("hit", "waited")
    future.result(timeout=30)
    assert pool.preload("b") is None  # already loaded: nothing to do
    assert list(pool.load_times) == ["b"]
    pool.close()


def test_would_evict_names_the_least_recently_used_unpinned_specialists(engine, random_adapters) -> None:
    size = adapter_mb(engine, random_adapters["a"])
    pool = SpecialistPool(engine, random_adapters, budget_mb=2.5 * size)
    for name in ("a", "b"):
        with pool.use(name):
            pass
    assert pool.would_evict("c") == ["a"] and pool.would_evict("a") == []  # a is loaded: nothing to do
    with pool.use("a"):  # pinned (and now the most recent): b would go instead
        assert pool.would_evict("c") == ["b"]


def test_a_preload_never_evicts_what_another_session_needs_more(engine, random_adapters) -> None:
    """The preloader loads a session's likely next specialist, unless that would push out one the other
    active sessions expect more; and not at all when the prediction is unsure or preloading is off."""
    from pz2.config import PoolConfig
    from pz2.runtime.predictor import UsagePredictor
    from pz2.runtime.preload import Preloader

    size = adapter_mb(engine, random_adapters["a"])
    paths = {"qna": random_adapters["a"], "technical": random_adapters["b"]}   # the predictor's categories
    pool = SpecialistPool(engine, paths, budget_mb=1.5 * size)   # room for one
    cfg = PoolConfig(preload_min_probability=0.5)
    predictor = UsagePredictor(("qna", "technical"), cfg)
    preloader = Preloader(pool, predictor, cfg)
    for _ in range(6):
        preloader.observe("busy", "qna")    # another session lives on qna: it expects qna again
    pool.drain(timeout=30)
    assert pool.state("qna") == LOADED, "a sure prediction with room to spare is preloaded"
    preloader.observe("new", "technical")   # one turn: less sure of technical than `busy` is of qna
    pool.drain(timeout=30)
    assert (pool.state("qna"), pool.state("technical")) == (LOADED, UNLOADED), "it would evict qna, needed more"
    off = PoolConfig(preload=False)
    quiet = SpecialistPool(engine, paths, budget_mb=64)
    Preloader(quiet, UsagePredictor(("qna", "technical"), off), off).observe("x", "technical")
    quiet.drain(timeout=30)
    assert quiet.state("technical") == UNLOADED, "preloading off: nothing loads ahead"
    quiet.close()
    pool.close()
