"""The generation engines: llama.cpp serving GGUF LoRA adapters, against transformers + PEFT."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import random_adapter
from transformers import AutoTokenizer, LlamaForCausalLM

from pz2.config import EngineConfig
from pz2.errors import ModelError
from pz2.models.gguf_export import write_lora_gguf
from pz2.runtime.engine_llamacpp import LlamaCppEngine
from pz2.runtime.engine_transformers import TransformersEngine

SYSTEM = "You are a helpful assistant."


@pytest.fixture(scope="module")
def adapters(random_adapters: dict[str, Path]) -> dict[str, Path]:
    return {"a": random_adapters["a"], "b": random_adapters["b"]}


def plain(**settings) -> EngineConfig:
    """runtime.engine without the no-repeat rule nor the ending rule: the models' own greedy answers, streamed
    as they come."""
    return EngineConfig(no_repeat_ngram_size=0, end_on_sentence=False, **settings)


@pytest.fixture(scope="module")
def engines(tiny_base: Path, tiny_gguf: Path, adapters: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    tok = AutoTokenizer.from_pretrained(tiny_base)
    fast = LlamaCppEngine(tiny_gguf, tok, SYSTEM, plain(max_new_tokens=16, threads=2, flash_attention=False),
                          cache_dir=tmp_path_factory.mktemp("lora-cache"))   # exact: float attention, as transformers computes it
    reference = TransformersEngine(LlamaForCausalLM.from_pretrained(tiny_base).eval(), tok, SYSTEM,
                                   plain(max_new_tokens=16))
    for engine in (fast, reference):
        for name, path in adapters.items():
            engine.load(name, path)
    return fast, reference


@pytest.mark.parametrize("adapter", [None, "a", "b"])
def test_llamacpp_gives_the_same_greedy_answer_as_peft(engines, adapter: str | None) -> None:
    fast, reference = engines
    for question in ("How do I draw a line in AutoCAD?", "I feel sad today"):
        a, b = fast.generate(question, adapter), reference.generate(question, adapter)
        assert a.token_ids == b.token_ids and len(a.token_ids) > 0
        assert a.text == b.text
        np.testing.assert_allclose(a.logprobs, b.logprobs, atol=2e-3)
        np.testing.assert_allclose(a.entropies, b.entropies, atol=2e-3)


def test_adapters_change_the_answer_and_switching_leaves_no_trace(engines) -> None:
    fast, _ = engines
    first = {name: fast.generate("What is recursion?", name).token_ids for name in (None, "a", "b")}
    assert len({tuple(ids) for ids in first.values()}) == 3, "each adapter must answer differently"
    for name in ("b", None, "a", "a", None, "b"):
        assert fast.generate("What is recursion?", name).token_ids == first[name]


def test_streamed_pieces_make_the_answer_and_timings_are_recorded(engines) -> None:
    fast, _ = engines
    pieces: list[str] = []
    gen = fast.stream("Tell me a joke", "a", on_text=pieces.append)
    assert "".join(pieces).strip() == gen.text
    assert 0 < gen.first_token_s <= gen.total_s
    assert len(gen.logprobs) == len(gen.entropies) == len(gen.token_ids) + gen.finished
    assert all(lp <= 0 for lp in gen.logprobs) and all(e >= 0 for e in gen.entropies)


def test_unloading_frees_the_name_and_unknown_adapters_are_refused(engines, adapters) -> None:
    fast, _ = engines
    fast.unload("b")
    assert "b" not in fast.loaded()
    with pytest.raises(ModelError, match="not loaded"):
        fast.generate("hi", "b")
    assert fast.load("b", adapters["b"]) > 0


def test_adapter_of_another_base_is_refused_with_the_reason(tmp_path: Path, engines) -> None:
    from transformers import LlamaConfig

    fast, _ = engines
    other = tmp_path / "other-base"
    LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=48, intermediate_size=64, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2)).save_pretrained(other)
    with pytest.raises(ModelError, match="llama.cpp refused the adapter"):
        fast.load("other", random_adapter(other, tmp_path / "other", 3))
    assert "other" not in fast.loaded()


def test_lora_gguf_carries_alpha_and_every_pair(adapters, tmp_path: Path) -> None:
    import gguf

    out = write_lora_gguf(adapters["a"], tmp_path / "a.gguf", "llama", n_head=4, n_head_kv=2, n_layers=2)
    reader = gguf.GGUFReader(out)
    assert reader.fields["adapter.type"].contents() == "lora"
    assert reader.fields["adapter.lora.alpha"].contents() == pytest.approx(16.0)
    names = {t.name for t in reader.tensors}
    cfg = json.loads((adapters["a"] / "adapter_config.json").read_text())
    assert cfg["r"] == 8 and len(names) == 2 * 2 * 7  # two layers, seven linear modules, A and B each
    assert all(n.endswith((".lora_a", ".lora_b")) for n in names)


def test_the_converted_lora_follows_its_config_not_only_its_weights(engines, adapters, tmp_path: Path) -> None:
    """Rank and alpha set the update's scale: the same weights under another alpha are another GGUF."""
    import gguf

    fast, _ = engines
    same_weights = tmp_path / "a-alpha32"
    shutil.copytree(adapters["a"], same_weights)
    cfg = json.loads((same_weights / "adapter_config.json").read_text())
    (same_weights / "adapter_config.json").write_text(json.dumps(cfg | {"lora_alpha": 32}))
    first, second = fast.lora_gguf(adapters["a"]), fast.lora_gguf(same_weights)
    assert first != second
    assert gguf.GGUFReader(second).fields["adapter.lora.alpha"].contents() == pytest.approx(32.0)
    (same_weights / "adapter_config.json").write_text('{"r": 8, "lora_al')
    with pytest.raises(ModelError, match="adapter_config.json: not valid JSON"):
        fast.lora_gguf(same_weights)


def test_a_message_that_fills_the_context_is_a_clear_error(tiny_base: Path, tiny_gguf: Path, tmp_path: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_base)
    small = LlamaCppEngine(tiny_gguf, tok, SYSTEM, plain(max_new_tokens=16, context_length=128, threads=1),
                           cache_dir=tmp_path)
    with pytest.raises(ModelError, match="fills the engine's context"):
        small.generate("word " * 200)
    assert small.generate("short question").total_s > 0


def test_a_full_model_can_be_a_specialist_in_either_engine(engines, tiny_base: Path, tiny_gguf: Path) -> None:
    """A specialist folder may hold a whole model instead of an adapter: here the base itself, so its
    answer must equal the bare base's."""
    fast, reference = engines
    assert reference.load("full", tiny_base) > 0 and fast.load("full", tiny_gguf) > 0
    for engine in (fast, reference):
        assert engine.generate("What is DNS?", "full").token_ids == engine.generate("What is DNS?", None).token_ids
        engine.unload("full")
    with pytest.raises(ModelError, match="one .gguf model"):
        fast.load("hf-folder", tiny_base)


def test_the_no_repeat_rule_bans_exactly_the_completing_tokens() -> None:
    from pz2.runtime.engine import BANNED, control_repetition

    logits = np.arange(10, dtype=np.float32)
    ids = [1, 2, 3, 1, 2]                       # the 3-gram (1, 2, 3) exists: after (1, 2), 3 is banned
    out = control_repetition(logits, ids, 3, 1.0)
    assert out[3] == np.float32(BANNED) and np.all(np.delete(out, 3) == np.delete(logits, 3))
    assert control_repetition(logits, ids, 0, 1.0) is logits          # off: untouched
    penalised = control_repetition(np.array([2.0, -2.0, 1.0]), [0, 1], 0, 2.0)
    np.testing.assert_allclose(penalised, [1.0, -4.0, 1.0])           # CTRL: divide positive, multiply negative


def test_both_engines_agree_under_repetition_control_and_never_repeat(tiny_base: Path, tiny_gguf: Path,
                                                                     tmp_path: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_base)
    rules = EngineConfig(max_new_tokens=40, threads=2, no_repeat_ngram_size=2, repetition_penalty=1.3)
    fast = LlamaCppEngine(tiny_gguf, tok, SYSTEM, rules, cache_dir=tmp_path)
    reference = TransformersEngine(LlamaForCausalLM.from_pretrained(tiny_base).eval(), tok, SYSTEM, rules)
    loose_engine = TransformersEngine(LlamaForCausalLM.from_pretrained(tiny_base).eval(), tok, SYSTEM,
                                      plain(max_new_tokens=40))
    question = "Repeat after me: again and again and again"
    a, b = fast.generate(question), reference.generate(question)
    assert a.token_ids == b.token_ids and len(a.token_ids) >= 4
    pairs = Counter(zip(a.token_ids, a.token_ids[1:]))
    asked = tok(question, add_special_tokens=False)["input_ids"]
    quoted = Counter(zip(asked, asked[1:]))
    assert all(n <= max(1, quoted[pair]) for pair, n in pairs.items()), "a pair repeats only as often as a copy may"
    loose = loose_engine.generate(question).token_ids
    loose_pairs = list(zip(loose, loose[1:]))
    assert len(loose_pairs) != len(set(loose_pairs)), "the tiny random model loops without the rule"
    assert np.isfinite(a.entropies).all()


def test_a_stop_string_ends_the_text_and_no_part_of_it_is_streamed() -> None:
    from pz2.runtime.engine import StopScanner

    scan = StopScanner(("</end>", "STOP"))
    out = [scan.push(p) for p in ("Hello <", "/en", "d> never seen")]
    assert out == ["Hello ", "", ""] and scan.stopped and scan.text == "Hello "
    scan = StopScanner(("STOP",))
    assert [scan.push(p) for p in ("a ST", "ILL here")] == ["a ", "STILL here"] and not scan.stopped
    assert scan.flush() == ""


def test_sampling_is_seeded_a_tiny_nucleus_is_greedy_and_cancelling_stops(engines) -> None:
    from pz2.runtime.engine import Sampling

    fast, _ = engines
    q = "Tell me a story about a robot"
    greedy = fast.generate(q, "a").token_ids
    seeded = [fast.stream(q, "a", sampling=Sampling(temperature=1.2, seed=s)).token_ids for s in (1, 1, 2)]
    assert seeded[0] == seeded[1] and seeded[0] != seeded[2] and seeded[0] != greedy
    assert fast.stream(q, "a", sampling=Sampling(temperature=1.0, top_p=1e-9, seed=5)).token_ids == greedy
    pieces: list[str] = []
    cut = fast.stream(q, "a", on_text=pieces.append, sampling=Sampling(cancelled=lambda: len(pieces) >= 3))
    assert cut.finish_reason == "cancelled" and len(cut.token_ids) == 3 and cut.token_ids == greedy[:3]


def test_earlier_turns_are_dropped_oldest_first_to_fit_the_context(engines) -> None:
    fast, reference = engines
    turns = [m for i in range(6) for m in ({"role": "user", "content": f"question {i} " + "word " * 60},
                                           {"role": "assistant", "content": f"answer {i} " + "word " * 60})]
    full = len(fast.prompt("last", turns))
    short = TransformersEngine(reference.model, fast.tokenizer, SYSTEM, plain(context_length=full - 100))
    prompt, dropped = short.fit_prompt("last", turns, None, 16)
    assert dropped >= 2 and dropped % 2 == 0 and len(prompt) + 16 <= full - 100
    assert prompt == fast.prompt("last", turns[dropped:]), "the newest turns, the system prompt and the question stay"
    assert fast.fit_prompt("last", turns, None, 16) == (fast.prompt("last", turns), 0)


def test_the_float32_log_softmax_matches_float64_and_keeps_banned_tokens_out() -> None:
    from pz2.runtime.engine import BANNED, log_softmax

    rng = np.random.default_rng(0)
    for scale in (1.0, 8.0, 40.0):   # 40: most exponents fall below float32's normal range
        logits = (rng.standard_normal(49152) * scale).astype(np.float32)
        logits[:3] = BANNED
        x = logits.astype(np.float64) - logits.max()
        reference = x - np.log(np.exp(x).sum())
        logp, entropy = log_softmax(logits)
        np.testing.assert_allclose(logp[3:], reference[3:], atol=5e-5)
        assert abs(entropy - float(-(np.exp(reference) * reference)[3:].sum())) < 1e-5
        assert (logp[:3] < -1e20).all() and int(np.argmax(logp)) == int(np.argmax(logits))


def _cut_by_rendering(engine, user: str, history: list[dict], system, limit: int) -> tuple[list[int], int]:
    """The cut as pz2 made it before: render, drop the oldest turn, render again, until it fits."""
    history, dropped = list(history), 0
    prompt = engine.prompt(user, history, system)
    while history and len(prompt) + limit > engine.context_length:
        cut = 2 if len(history) > 1 and history[1]["role"] == "assistant" else 1
        history, dropped = history[cut:], dropped + cut
        prompt = engine.prompt(user, history, system)
    return prompt, dropped


def test_the_one_pass_history_cut_is_the_cut_a_render_after_each_drop_finds(engines) -> None:
    """Each message is tokenized once to find the cut, then checked by rendering: the same prompt and the same
    number of dropped messages as dropping one turn at a time, on turns of every shape and every budget."""
    import random

    _, reference = engines
    rng = random.Random(0)
    words = "the a list tuple install package café 日本 error line draw modeling SketchUp".split()
    history = []
    for i in range(40):
        role = "user" if i % 3 != 2 or rng.random() < 0.3 else "assistant"   # answered and unanswered turns
        history.append({"role": role, "content": " ".join(rng.choices(words, k=rng.randint(1, 60)))})
    for context in (200, 333, 512, 777, 1024, 4096):
        short = TransformersEngine(reference.model, reference.tokenizer, SYSTEM, plain(context_length=context))
        for limit, system in ((1, None), (16, "Be brief."), (64, None)):
            assert short.fit_prompt("last question", history, system, limit) == \
                _cut_by_rendering(short, "last question", history, system, limit), (context, limit)
    assert short.fit_prompt("q", [], None, 16) == (short.prompt("q"), 0)


def test_a_request_past_its_deadline_does_not_even_read_its_prompt(engines) -> None:
    from pz2.runtime.engine import Sampling

    fast, _ = engines
    reads = []
    decode = fast._decode
    fast._decode = lambda *a, **k: reads.append(1) or decode(*a, **k)   # a spy on the engine's prompt reading
    try:
        gen = fast.stream("a question nobody waits for", "a", sampling=Sampling(cancelled=lambda: True))
    finally:
        del fast._decode
    assert (gen.finish_reason, gen.token_ids, reads) == ("cancelled", [], [])
