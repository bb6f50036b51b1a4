"""What llama.cpp's batched decode gives on this CPU: the measurements the engine's batching
(runtime/llamacpp_batch.py) is built on.

One llama.cpp context over the shipped base (the engine's own settings) with one KV-cache slot per
sequence, either a stream per sequence (`kv_unified` off, what the engine uses) or one shared cache
(on). Per setting, with and without the unified adapter: the time of one decode step of 1, 2, 4 and
8 sequences (each sequence one token per step, after the same prompt), and whether greedy answers
stay those of a sequence decoded alone when four different questions are decoded together. Then,
with a stream per sequence: a new request's prompt (52 tokens) read beside four one-token steps, in
the same call or in its own; steps alternating between two adapters (the unified one and the bare
base) against one adapter; and four sequences in consecutive slots against spread ones.

    python benchmarks/llamacpp_batching.py          # ~1 min, after `pz2 demo`
"""

from __future__ import annotations

import ctypes
import json
import time
from pathlib import Path

import numpy as np

from pz2.runtime.engine import build_engine
from pz2.workspace import Workspace

RESULTS = Path(__file__).parent / "results" / "llamacpp_batching.json"
QUESTIONS = ["Hey, the equator?", "What is DNS?", "How do I fix git?", "What is an IP address?"]
STEPS, ANSWER = 30, 32


class Batched:
    def __init__(self, engine, unified: bool, adapter: str | None) -> None:
        self.lib, self.engine = engine.lib, engine
        p = self.lib.llama_context_params()
        ctypes.pointer(p)[0] = engine.llm.context_params
        p.n_ctx, p.n_seq_max, p.kv_unified, p.n_batch = 8 * 1024, 8, unified, 1024
        self.ctx = self.lib.llama_init_from_model(engine.llm.model, p)
        self.memory = self.lib.llama_get_memory(self.ctx)
        self.batch = self.lib.llama_batch_init(1024, 0, 1)
        self.n_vocab = engine.llm.n_vocab()
        if adapter is not None:
            handles = (self.lib.llama_adapter_lora_p_ctypes * 1)(engine.adapters[adapter])
            self.lib.llama_set_adapters_lora(self.ctx, handles, 1, (ctypes.c_float * 1)(1.0))

    def decode(self, items: list[tuple[int, int, int, bool]]) -> None:   # (token, position, sequence, logits?)
        b = self.batch
        b.n_tokens = len(items)
        for i, (token, pos, seq, out) in enumerate(items):
            b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = token, pos, 1, out
            b.seq_id[i][0] = seq
        assert self.lib.llama_decode(self.ctx, b) == 0

    def logits(self, i: int) -> np.ndarray:
        return np.ctypeslib.as_array(self.lib.llama_get_logits_ith(self.ctx, i), shape=(self.n_vocab,)).copy()

    def prefill(self, prompt: list[int], seq: int) -> None:
        self.decode([(t, i, seq, i == len(prompt) - 1) for i, t in enumerate(prompt)])

    def step_ms(self, n: int, prompt: list[int]) -> float:
        self.lib.llama_memory_clear(self.memory, True)
        for seq in range(n):
            self.prefill(prompt, seq)
        start = time.perf_counter()
        for k in range(STEPS):
            self.decode([(100, len(prompt) + k, seq, True) for seq in range(n)])
        return (time.perf_counter() - start) / STEPS * 1000

    def set_adapter(self, adapter: str | None) -> None:
        if adapter is None:
            self.lib.llama_set_adapters_lora(self.ctx, None, 0, None)
        else:
            handles = (self.lib.llama_adapter_lora_p_ctypes * 1)(self.engine.adapters[adapter])
            self.lib.llama_set_adapters_lora(self.ctx, handles, 1, (ctypes.c_float * 1)(1.0))

    def round_with_prompt_ms(self, prompt: list[int], together: bool) -> float:
        """Four sequences step once and a fifth reads its prompt: one call, or the prompt in its own."""
        times = []
        for k in range(5):
            self.lib.llama_memory_clear(self.memory, True)
            for seq in range(4):
                self.prefill(prompt, seq)
            steps = [(100, len(prompt), seq, True) for seq in range(4)]
            new = [(t, i, 4, i == len(prompt) - 1) for i, t in enumerate(prompt)]
            start = time.perf_counter()
            if together:
                self.decode(steps + new)
            else:
                self.decode(new)
                self.decode(steps)
            times.append(time.perf_counter() - start)
        return float(np.median(times) * 1000)

    def alternating_ms(self, prompt: list[int], adapters: tuple[str | None, str | None]) -> float:
        """Per step: sequences 0-1 under the first adapter, then 2-3 under the second."""
        self.lib.llama_memory_clear(self.memory, True)
        for seq in range(4):
            self.set_adapter(adapters[seq // 2])
            self.prefill(prompt, seq)
        start = time.perf_counter()
        for k in range(STEPS):
            for half in (0, 1):
                self.set_adapter(adapters[half])
                self.decode([(100, len(prompt) + k, seq, True) for seq in (2 * half, 2 * half + 1)])
        return (time.perf_counter() - start) / STEPS * 1000

    def spread_ms(self, prompt: list[int], slots: tuple[int, ...]) -> float:
        """One step of four sequences held in the given slots."""
        self.lib.llama_memory_clear(self.memory, True)
        for seq in slots:
            self.prefill(prompt, seq)
        start = time.perf_counter()
        for k in range(STEPS):
            self.decode([(100, len(prompt) + k, seq, True) for seq in slots])
        return (time.perf_counter() - start) / STEPS * 1000

    def answers(self, prompts: list[list[int]], together: bool) -> list[list[int]]:
        """Greedy token ids of each prompt, decoded alone (one after another) or all at once."""
        groups = [list(range(len(prompts)))] if together else [[k] for k in range(len(prompts))]
        out: list[list[int]] = [[] for _ in prompts]
        for group in groups:
            self.lib.llama_memory_clear(self.memory, True)
            for k in group:
                self.prefill(prompts[k], k)
                out[k].append(int(np.argmax(self.logits(-1))))
            for step in range(ANSWER):
                self.decode([(out[k][-1], len(prompts[k]) + step, k, True) for k in group])
                for i, k in enumerate(group):
                    out[k].append(int(np.argmax(self.logits(i))))
        return out


def main() -> None:
    ws = Workspace(Path("finetuning"))
    engine = build_engine(ws.model_config())
    engine.load("unified", ws.unified_model / "adapter")
    prompts = [engine.prompt(q) for q in QUESTIONS]

    def measure() -> list[dict]:
        rows = []
        for unified in (False, True):
            for adapter in (None, "unified"):
                b = Batched(engine, unified, adapter)
                ms = {n: b.step_ms(n, prompts[0]) for n in (1, 2, 4, 8)}
                same = [a == c for a, c in zip(b.answers(prompts, False), b.answers(prompts, True), strict=True)]
                rows.append({"kv_unified": unified, "adapter": adapter, "step_ms": ms,
                             "tokens_per_s": {n: n / t * 1000 for n, t in ms.items()},
                             "answers_unchanged_together": f"{sum(same)}/{len(same)}"})
                print(f"kv_unified={unified!s:5} adapter={adapter!s:7} step ms "
                      + " ".join(f"{n}:{t:5.1f}" for n, t in ms.items())
                      + f"  tokens/s 8 vs 1: {8 / ms[8] * ms[1]:.2f}x  answers unchanged together: {sum(same)}/4",
                      flush=True)
        b = Batched(engine, False, "unified")

        def prompt_ms(adapter: str | None) -> float:
            b.set_adapter(adapter)
            b.lib.llama_memory_clear(b.memory, True)
            start = time.perf_counter()
            b.prefill(prompts[0], 0)
            return time.perf_counter() - start

        traffic = {"prompt_alone_ms": float(np.median([prompt_ms("unified") for _ in range(5)]) * 1000),
                   "prompt_alone_base_ms": float(np.median([prompt_ms(None) for _ in range(5)]) * 1000),
                   "prompt_beside_steps_ms": b.round_with_prompt_ms(prompts[0], True),
                   "prompt_then_steps_ms": b.round_with_prompt_ms(prompts[0], False),
                   "one_adapter_step_ms": b.alternating_ms(prompts[0], ("unified", "unified")),
                   "two_adapters_step_ms": b.alternating_ms(prompts[0], ("unified", None)),
                   "consecutive_slots_step_ms": b.spread_ms(prompts[0], (0, 1, 2, 3)),
                   "spread_slots_step_ms": b.spread_ms(prompts[0], (0, 2, 4, 6))}
        print("a 52-token prompt alone: {prompt_alone_ms:.1f} ms with the unified adapter, {prompt_alone_base_ms:.1f} "
              "ms without".format(**traffic))
        print("a 52-token prompt beside 4 steps: {prompt_beside_steps_ms:.1f} ms in one call, "
              "{prompt_then_steps_ms:.1f} ms in two; 4 sequences in 2 groups of 2: {one_adapter_step_ms:.1f} ms "
              "a step under one adapter, {two_adapters_step_ms:.1f} ms switching adapters".format(**traffic))
        print("4 sequences a step: {consecutive_slots_step_ms:.1f} ms in slots 0-3, {spread_slots_step_ms:.1f} ms in "
              "slots 0, 2, 4, 6 (llama.cpp computes consecutive streams together)".format(**traffic))
        return rows + [traffic]

    rows = measure()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(rows, indent=2))
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
