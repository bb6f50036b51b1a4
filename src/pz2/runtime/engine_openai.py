"""The scale-out engine: an OpenAI-compatible server generates, the router stays here.

The server is vLLM serving the base with the pz2 adapters (`vllm serve <base> --enable-lora
--lora-modules unified=… qna=… technical=…`) or another `pz2 serve`; each adapter name maps to a
server model name (`runtime.engine.openai.models`). Prompts are still counted with the base's
tokenizer here, so passages and earlier turns are cut to the same context as in-process.

The confidence model needs each token's log-probability and the entropy of its distribution;
a server returns only the `top_logprobs` likeliest tokens, so the entropy is computed over those
plus one bucket holding the rest of the mass: a lower bound, exact when the top tokens hold it all.
A server reports no log-probability for the end-of-turn token, so that one decision is missing.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pz2.config import EngineConfig, ModelConfig
from pz2.errors import ContextLengthError, ModelError
from pz2.runtime.engine import GREEDY, EngineBase, Generation, Sampling, TextCallback, TokenLogprob

BACKEND_KEY_ENV = "PZ2_BACKEND_API_KEY"


def entropy_bound(top: Sequence[float]) -> float:
    """Entropy (nats) of a distribution known by its top log-probabilities, the rest lumped together."""
    p = [math.exp(lp) for lp in top]
    rest = max(0.0, 1.0 - sum(p))
    return -sum(q * lp for q, lp in zip(p, top, strict=True)) - (rest * math.log(rest) if rest > 0 else 0.0)


class OpenAIEngine(EngineBase):
    name = "openai"

    def __init__(self, client: Any, tokenizer: Any, system_prompt: str, settings: EngineConfig) -> None:
        """`client`: an `openai.OpenAI` on the server; `settings`: runtime.engine, its `openai` part naming the
        server's model per adapter. The server holds the weights, so no served identity is checked here."""
        super().__init__(tokenizer, system_prompt, settings)
        self.client = client
        self.remote = settings.openai

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> OpenAIEngine:
        import openai

        from pz2.models.prepare import base_tokenizer

        e = cfg.runtime.engine
        key = e.openai.api_key or os.environ.get(BACKEND_KEY_ENV) or "none"
        client = openai.OpenAI(base_url=e.openai.base_url, api_key=key, timeout=e.openai.timeout_s, max_retries=0)
        return cls(client, base_tokenizer(cfg), cfg.system_prompt, e)

    @property
    def parallel(self) -> int:
        return 1 << 16   # the server schedules; runtime.serving.max_running bounds what is sent

    def available(self, path: Path) -> bool:
        return True  # the server holds the adapters; it says so per request

    def _load(self, name: str, path: Path) -> int:
        if name not in self.remote.models:
            raise ModelError(f"{name}: runtime.engine.openai.models names no server model for it")
        return 0

    def _unload(self, name: str) -> None:
        """Nothing to free here: the server owns the weights."""

    def _ids(self, pieces: list[str]) -> list[int]:
        """Ids of the tokens the server sent as text, one per token: its count is exact (the confidence's
        length), its ids exact for tokens that are whole characters (re-tokenising the answer is not:
        BPE merges the "\n" "\n" a model may emit into one "\n\n")."""
        unk = self.tokenizer.unk_token_id if self.tokenizer.unk_token_id is not None else -1
        return [next(iter(self.tokenizer(p, add_special_tokens=False)["input_ids"]), unk) for p in pieces]

    def stream(self, user: str, adapter: str | None, max_new_tokens: int | None = None,
               on_text: TextCallback | None = None, history: Sequence[dict[str, str]] = (),
               system: str | None = None, sampling: Sampling = GREEDY) -> Generation:
        """The answer from the server's model for `adapter`; no lock: the server batches concurrent requests."""
        import openai

        limit = max_new_tokens or self.max_new_tokens
        prompt, dropped = self.fit_prompt(user, history, system, limit)
        limit = min(limit, self.context_length - len(prompt))
        if limit <= 0:
            raise ContextLengthError(f"the message fills the engine's context ({len(prompt)} tokens of {self.context_length})")
        messages = [{"role": "system", "content": self.system_prompt if system is None else system},
                    *list(history)[dropped:], {"role": "user", "content": user}]
        extra: dict[str, Any] = {"retrieval": False}  # a pz2 backend must not ground again; others ignore it
        if self.repetition_penalty != 1.0:
            extra["repetition_penalty"] = self.repetition_penalty
        model = self.remote.models["base" if adapter is None else adapter]
        start = time.perf_counter()
        try:
            chunks = self.client.chat.completions.create(
                model=model, messages=messages, max_tokens=limit, temperature=sampling.temperature,
                top_p=sampling.top_p, seed=sampling.seed, stop=list(sampling.stop) or None, logprobs=True,
                top_logprobs=max(self.remote.top_logprobs, sampling.top_logprobs or 0), stream=True,
                stream_options={"include_usage": True}, extra_body=extra)
            text, first, reason, prompt_tokens = "", 0.0, "length", len(prompt)
            logprobs: list[float] = []
            entropies: list[float] = []
            tokens: list[TokenLogprob] = []
            for chunk in chunks:
                if sampling.cancelled is not None and sampling.cancelled():
                    chunks.close()
                    reason = "cancelled"
                    break
                if chunk.usage is not None:
                    prompt_tokens = chunk.usage.prompt_tokens
                for choice in chunk.choices:
                    for entry in (choice.logprobs.content or []) if choice.logprobs else []:
                        top = [(t.token, t.logprob) for t in entry.top_logprobs]
                        logprobs.append(entry.logprob)
                        entropies.append(entropy_bound([lp for _, lp in top]))
                        tokens.append(TokenLogprob(entry.token, entry.logprob, tuple(top[: sampling.top_logprobs or 0])))
                    piece = choice.delta.content or ""
                    if piece:
                        first = first or time.perf_counter() - start
                        text += piece
                        if on_text is not None:
                            on_text(piece)
                    if choice.finish_reason is not None:
                        reason = choice.finish_reason
        except openai.APIConnectionError as e:
            raise ModelError(f"{self.remote.base_url}: the backend cannot be reached ({e})") from None
        except openai.APIStatusError as e:
            raise ModelError(f"{self.remote.base_url}: the backend answered {e.status_code} for model "
                             f"{model!r} ({e.message})") from None
        ids = self._ids([t.token for t in tokens]) if tokens else self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return Generation(text.strip(), ids, logprobs, entropies, reason == "stop", first,
                          time.perf_counter() - start, reason, prompt_tokens, dropped,
                          tokens if sampling.top_logprobs is not None else None)
