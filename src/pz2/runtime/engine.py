"""Generation engines: one base model in memory, adapters switched on it per request.

Both engines share the greedy loop below, so they differ only in how a token's logits are
computed; that is what makes "same prompt, same adapter, same answer" testable across them.
Repetition control (a no-repeat n-gram rule and a repetition penalty on the answer's own
tokens) lives in the loop too, so both engines still agree token for token.
The loop records what the confidence estimate needs (each chosen token's log-probability and
the entropy of its distribution) at the cost of one softmax per token.

A request holds the engine's lock from choosing its adapter to its last token: one context,
one adapter at a time, so two concurrent requests can never decode with each other's adapter.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pz2.config import ModelConfig
from pz2.errors import ModelError
from pz2.models.chat import prompt_ids

TextCallback = Callable[[str], None]


@dataclass
class Generation:
    text: str
    token_ids: list[int]
    logprobs: list[float] = field(repr=False)    # per decision, the end-of-turn one included when finished:
    entropies: list[float] = field(repr=False)   # an empty answer is still a (possibly confident) choice
    finished: bool          # ended with end-of-turn, not cut at max_new_tokens
    first_token_s: float    # prompt in, first token out
    total_s: float

    @property
    def tokens_per_s(self) -> float:
        return len(self.token_ids) / self.total_s if self.total_s > 0 else 0.0


BANNED = -1e30  # a logit no token can win with; finite, so the entropy stays a number


def control_repetition(logits: np.ndarray, ids: list[int], no_repeat_ngram_size: int, penalty: float) -> np.ndarray:
    """The logits with repeats of the answer so far discouraged: every token that would complete an
    n-gram already in `ids` is banned (as transformers' `no_repeat_ngram_size`), and the logit of each
    token already in `ids` is divided (positive) or multiplied (negative) by `penalty` (CTRL)."""
    n = no_repeat_ngram_size
    if penalty == 1.0 and (n == 0 or len(ids) < n):
        return logits
    logits = logits.copy()
    if penalty != 1.0 and ids:
        seen = np.unique(np.asarray(ids))
        vals = logits[seen]
        logits[seen] = np.where(vals > 0, vals / penalty, vals * penalty)
    if n and len(ids) >= n:
        prefix = ids[len(ids) - n + 1:]
        banned = [ids[i + n - 1] for i in range(len(ids) - n + 1) if ids[i:i + n - 1] == prefix]
        logits[banned] = BANNED
    return logits


def token_stats(logits: np.ndarray) -> tuple[int, float, float]:
    """(greedy token, its log-probability, entropy of the distribution), in float64 for stability."""
    x = logits.astype(np.float64)
    x -= x.max()
    p = np.exp(x)
    z = p.sum()
    p /= z
    best = int(np.argmax(x))
    logp = x - np.log(z)
    return best, float(logp[best]), float(-(p * logp).sum())


class TextStream:
    """Turns token ids into text pieces as they come, holding back half a multi-byte character."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer, self.ids, self.emitted = tokenizer, [], ""

    def push(self, token: int) -> str:
        self.ids.append(token)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):
            return ""
        piece, self.emitted = text[len(self.emitted):], text
        return piece


class Engine:
    """A base model plus named adapters (or full models), generating greedily under one lock."""

    name = "engine"

    def __init__(self, tokenizer: Any, system_prompt: str, max_new_tokens: int,
                 no_repeat_ngram_size: int = 0, repetition_penalty: float = 1.0) -> None:
        self.tokenizer = tokenizer
        self.system_prompt = system_prompt
        self.max_new_tokens = max_new_tokens
        self.no_repeat_ngram_size = no_repeat_ngram_size
        self.repetition_penalty = repetition_penalty
        self.lock = threading.RLock()
        self.sizes: dict[str, int] = {}
        self.context_length = 1 << 30  # tokens of prompt + answer; engines with a fixed context set it
        stops = {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|endoftext|>")}
        self.stop_ids = {t for t in stops if isinstance(t, int) and t >= 0}

    # -- what an engine implements ------------------------------------------------------
    def _load(self, name: str, path: Path) -> int:
        """Load a specialist; return the bytes it adds to memory."""
        raise NotImplementedError

    def _unload(self, name: str) -> None:
        raise NotImplementedError

    def _start(self, adapter: str | None, ids: list[int]) -> np.ndarray:
        """Select `adapter` (None = the bare base), forget any earlier state, return the last logits of `ids`."""
        raise NotImplementedError

    def _next(self, token: int) -> np.ndarray:
        """Feed one token; return the logits after it."""
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------
    def load(self, name: str, path: Path) -> int:
        """Load an adapter or a full model under `name`; its size in bytes."""
        with self.lock:
            if name not in self.sizes:
                if not path.exists():
                    raise ModelError(f"{path}: no such model folder; train it first")
                self.sizes[name] = self._load(name, path)
            return self.sizes[name]

    def unload(self, name: str) -> None:
        with self.lock:
            if self.sizes.pop(name, None) is not None:
                self._unload(name)

    @staticmethod
    def size_hint(path: Path) -> int:
        """Bytes a specialist will take before it is loaded: its weight files (an adapter's float32
        LoRA weights are the same size in either engine)."""
        if path.is_file():
            return path.stat().st_size
        return sum(f.stat().st_size for pattern in ("*.safetensors", "*.gguf") for f in path.glob(pattern))

    def loaded(self) -> list[str]:
        return list(self.sizes)

    def prompt(self, user: str) -> list[int]:
        return prompt_ids(self.tokenizer, self.system_prompt, user)

    def stream(self, user: str, adapter: str | None, max_new_tokens: int | None = None,
               on_text: TextCallback | None = None) -> Generation:
        """Greedy answer to one user turn with `adapter`, calling `on_text` with each new piece."""
        limit = max_new_tokens or self.max_new_tokens
        with self.lock:
            if adapter is not None and adapter not in self.sizes:
                raise ModelError(f"{adapter}: not loaded in the {self.name} engine")
            start = time.perf_counter()
            prompt = self.prompt(user)
            limit = min(limit, self.context_length - len(prompt))
            if limit <= 0:
                raise ModelError(f"the message fills the engine's context ({len(prompt)} tokens of "
                                 f"{self.context_length}); shorten it or raise runtime.engine.context_length")
            logits = self._start(adapter, prompt)
            text = TextStream(self.tokenizer)
            ids: list[int] = []
            logprobs: list[float] = []
            entropies: list[float] = []
            first = 0.0
            finished = False
            for step in range(limit):
                logits = control_repetition(logits, ids, self.no_repeat_ngram_size, self.repetition_penalty)
                token, logp, entropy = token_stats(logits)
                if step == 0:
                    first = time.perf_counter() - start
                logprobs.append(logp)
                entropies.append(entropy)
                if token in self.stop_ids:
                    finished = True
                    break
                ids.append(token)
                piece = text.push(token)
                if piece and on_text is not None:
                    on_text(piece)
                if step + 1 < limit:
                    logits = self._next(token)
            total = time.perf_counter() - start
        return Generation(text.emitted.strip(), ids, logprobs, entropies, finished, first, total)

    def generate(self, user: str, adapter: str | None = None, max_new_tokens: int | None = None) -> Generation:
        return self.stream(user, adapter, max_new_tokens)


def build_engine(cfg: ModelConfig) -> Engine:
    """The engine the config names, with its base loaded (no adapters yet)."""
    backend = cfg.runtime.engine.backend
    if backend == "llamacpp":
        from pz2.runtime.engine_llamacpp import LlamaCppEngine

        return LlamaCppEngine.from_config(cfg)
    from pz2.runtime.engine_transformers import TransformersEngine

    return TransformersEngine.from_config(cfg)
