"""Generation engines: one base model in memory, adapters switched on it per request.

Both engines choose every token with `Decoding` below, so they differ only in how a token's
logits are computed; that is what makes "same prompt, same adapter, same answer" testable across
them, and across answers decoded alone or together. Repetition control (a no-repeat n-gram rule
and a repetition penalty on the answer's own tokens) lives there too, so both engines still agree
token for token. It records what the confidence estimate needs (each chosen token's
log-probability and the entropy of its distribution) at the cost of one softmax per token.

Sampling (temperature, top-p, seed), stop strings and per-token log-probabilities are the
OpenAI API's, applied in the same place; the default stays greedy.

Concurrent requests never decode with each other's adapter: the transformers engine answers one
at a time under its lock; the llama.cpp engine decodes several together, each llama.cpp call
holding one adapter's answers (runtime/llamacpp_batch.py).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pz2.config import EngineConfig, ModelConfig
from pz2.errors import ContextLengthError, EngineUnavailable, ModelError
from pz2.models.chat import end_of_turn_ids, prompt_ids
from pz2.models.loading import adapter_dir, check_trained_on, find_trained
from pz2.models.served import ModelIdentity, ServedModel
from pz2.runtime.ending import SentenceHold

logger = logging.getLogger(__name__)

TextCallback = Callable[[str], None]
UNIFIED = "unified"   # the unified adapter's name in an engine, when it is not merged


@dataclass(frozen=True)
class Sampling:
    """How one request chooses its tokens. The default is greedy, what the confidence model was
    fitted on; the API's `temperature`, `top_p`, `seed` and `stop` change it per request."""

    temperature: float = 0.0            # 0 = greedy
    top_p: float = 1.0                  # nucleus: sample among the likeliest tokens holding this much mass
    seed: int | None = None             # same seed, same sampled answer
    stop: tuple[str, ...] = ()          # the answer ends before the first of these strings
    top_logprobs: int | None = None     # None: no per-token log-probabilities; 0..20: that many alternatives each
    quotable: tuple[str, ...] = ()      # texts the answer may copy exactly (question, passages); (): the user message
    cancelled: Callable[[], bool] | None = field(default=None, compare=False)  # asked per token: client gone, deadline

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


GREEDY = Sampling()


@dataclass(frozen=True)
class TokenLogprob:
    """One answer token as the OpenAI API reports it: its text, log-probability and the likeliest alternatives."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass
class Generation:
    text: str
    token_ids: list[int]
    logprobs: list[float] = field(repr=False)    # per decision, the end-of-turn one included when finished:
    entropies: list[float] = field(repr=False)   # an empty answer is still a (possibly confident) choice
    finished: bool          # ended with end-of-turn, not cut at max_new_tokens
    first_token_s: float    # prompt in, first token out
    total_s: float
    finish_reason: str = "stop"   # as OpenAI names it: stop (end of turn or a stop string) | length | cancelled
    prompt_tokens: int = 0
    dropped_messages: int = 0     # earlier turns left out so the prompt fits the context
    token_logprobs: list[TokenLogprob] | None = field(default=None, repr=False)   # when asked for

    @property
    def tokens_per_s(self) -> float:
        return len(self.token_ids) / self.total_s if self.total_s > 0 else 0.0


BANNED = -1e30  # a logit no token can win with; finite, so the entropy stays a number


def control_repetition(logits: np.ndarray, ids: list[int], no_repeat_ngram_size: int, penalty: float,
                       source: Counter | None = None, twins: np.ndarray | None = None) -> np.ndarray:
    """The logits with repeats of the answer so far discouraged: every token that would complete an
    n-gram already in `ids` is banned (as transformers' `no_repeat_ngram_size`), and the logit of each
    token already in `ids` is divided (positive) or multiplied (negative) by `penalty` (CTRL).

    Copying stays exact. `source` counts the n-grams of what the answer may quote (the question and the
    passages): an n-gram may occur in the answer as often as there (once, if not there), so a grounded answer
    quotes a passage that repeats itself ("Freeze Panes" twice) word for word, and a loop over a quoted
    phrase still stops. `twins` maps each token to the same word with or without its leading space (-1:
    none); a banned token takes its twin along, or the model writes the word glued to the one before
    ("FreezePanes") or split from it instead."""
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
        used = Counter(ids[i + n - 1] for i in range(len(ids) - n + 1) if ids[i:i + n - 1] == prefix)

        def copies(token: int) -> int:   # times the prompt has this n-gram
            return source[(*prefix, token)] if source else 0

        banned = [t for t, count in used.items() if count >= max(1, copies(t))]
        if twins is not None:   # unless the source itself writes the twin there, and a copy may still use it
            banned += [int(twins[t]) for t in banned
                       if twins[t] >= 0 and copies(int(twins[t])) <= used.get(int(twins[t]), 0)]
        logits[banned] = BANNED
    return logits


def ngram_counts(ids: list[int], n: int) -> Counter:
    """How often each n-gram of `ids` occurs: what a copy of them may repeat (control_repetition's `source`)."""
    return Counter(tuple(ids[i:i + n]) for i in range(len(ids) - n + 1)) if n else Counter()


def space_twins(tokenizer: Any) -> np.ndarray:
    """For each token id, the id of the same text with or without a leading space ("Ġ" in byte-level BPE,
    "▁" in SentencePiece), or -1."""
    vocab = tokenizer.get_vocab()
    twins = np.full(max(vocab.values()) + 1, -1, dtype=np.int64)
    for token, i in vocab.items():
        if token[:1] in ("Ġ", "▁") and token[1:] in vocab:
            twins[i], twins[vocab[token[1:]]] = vocab[token[1:]], i
    return twins


EXP_FLOOR = np.float32(-80.0)   # exp() below it lands in float32's denormals, where numpy leaves its fast path


def log_softmax(logits: np.ndarray) -> tuple[np.ndarray, float]:
    """(log-probabilities, entropy of the distribution), once per token over the whole vocabulary.

    In float32 with one exp pass and the entropy as log Z - E[x]: 0.07 ms for 49k logits against 0.13-0.39 ms
    in float64, within 2e-5 of it (log-probabilities) and 1e-6 (entropy). Exponents are floored at -80 (a
    weight of 1e-35, nothing against the sum); the log-probabilities are not."""
    x = logits.astype(np.float32) - logits.max()
    floored = np.maximum(x, EXP_FLOOR)
    p = np.exp(floored)
    z = float(p.sum(dtype=np.float64))
    log_z = math.log(z)
    entropy = log_z - float(p @ floored) / z
    x -= np.float32(log_z)
    return x, entropy


def choose(logp: np.ndarray, sampling: Sampling, rng: np.random.Generator | None) -> int:
    """The greedy token, or one drawn at `sampling.temperature` from the top-p nucleus."""
    if sampling.greedy or rng is None:
        return int(np.argmax(logp))
    scaled = logp / sampling.temperature
    p = np.exp(scaled - scaled.max())
    p /= p.sum()
    order = np.argsort(-p)
    keep = order[: int(np.searchsorted(np.cumsum(p[order]), sampling.top_p) + 1)]  # at least the likeliest token
    q = p[keep] / p[keep].sum()
    return int(keep[rng.choice(len(keep), p=q)])


class StopScanner:
    """Cuts the streamed text before the first stop string, holding back a tail that might begin one,
    so a client never sees part of a stop string."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = tuple(s for s in stops if s)
        self.text = ""      # everything generated
        self.sent = 0       # characters of it released
        self.stopped = False

    def push(self, piece: str) -> str:
        self.text += piece
        hits = [i for i in (self.text.find(s) for s in self.stops) if i >= 0]
        if hits:
            self.stopped, self.text = True, self.text[: min(hits)]
            return self.release(len(self.text))
        hold = max((k for s in self.stops for k in range(1, len(s)) if self.text.endswith(s[:k])), default=0)
        return self.release(len(self.text) - hold)

    def release(self, upto: int) -> str:
        piece, self.sent = self.text[self.sent:upto], max(self.sent, upto)
        return piece

    def flush(self) -> str:
        return self.release(len(self.text))


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


class Engine(Protocol):
    """What the assistant, the specialist pool and the server ask of an engine: adapters (or whole models)
    loaded by name on one served model, and answers streamed with one of them. `LocalEngine` serves in this
    process (llama.cpp, transformers); `OpenAIEngine` asks an OpenAI-compatible server."""

    name: str
    tokenizer: Any
    max_new_tokens: int
    context_length: int                  # tokens of prompt + answer
    served: ModelIdentity | None         # the served model: adapters trained on another are refused

    @property
    def unified(self) -> str | None:
        """The adapter the unified answer uses; None: the served model is it (merged), or none is trained."""

    @property
    def parallel(self) -> int:
        """Requests the engine generates at once; beyond it they only wait."""

    def load(self, name: str, path: Path) -> int: ...
    def unload(self, name: str) -> None: ...
    def loaded(self) -> list[str]: ...
    def available(self, path: Path) -> bool: ...
    def size_hint(self, path: Path) -> int: ...
    def model_path(self, served: ServedModel) -> Path: ...
    def prompt(self, user: str, history: Sequence[dict[str, str]] = (), system: str | None = None) -> list[int]: ...
    def fit_prompt(self, user: str, history: Sequence[dict[str, str]], system: str | None,
                   limit: int) -> tuple[list[int], int]: ...

    def stream(self, user: str, adapter: str | None, max_new_tokens: int | None = None,
               on_text: TextCallback | None = None, history: Sequence[dict[str, str]] = (),
               system: str | None = None, sampling: Sampling = GREEDY) -> Generation: ...

    def generate(self, user: str, adapter: str | None = None, max_new_tokens: int | None = None) -> Generation: ...


class EngineBase(ABC):
    """What every engine shares, decoding aside: its settings, the adapters it holds by name (each
    checked against the served model), and prompts cut to its context."""

    name = "engine"

    def __init__(self, tokenizer: Any, system_prompt: str, settings: EngineConfig,
                 served: ModelIdentity | None = None) -> None:
        self.tokenizer = tokenizer
        self.system_prompt = system_prompt
        self.max_new_tokens = settings.max_new_tokens
        self.end_on_sentence = settings.end_on_sentence
        self.context_length = settings.context_length
        self.no_repeat_ngram_size = settings.no_repeat_ngram_size
        self.repetition_penalty = settings.repetition_penalty
        self.served = served
        self.lock = threading.RLock()
        self.sizes: dict[str, int] = {}

    @abstractmethod
    def _load(self, name: str, path: Path) -> int:
        """Load a specialist; return the bytes it adds to memory."""

    @abstractmethod
    def _unload(self, name: str) -> None:
        """Free what `_load` took."""

    @property
    def unified(self) -> str | None:
        return UNIFIED if UNIFIED in self.sizes else None

    def load(self, name: str, path: Path) -> int:
        """Load an adapter or a full model under `name`; its size in bytes."""
        with self.lock:
            if name not in self.sizes:
                if not self.available(path):
                    raise ModelError(f"{path}: no such model folder; train it first")
                adapter = adapter_dir(path)
                if adapter is not None:
                    check_trained_on(adapter, self.served)
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

    def model_path(self, served: ServedModel) -> Path:
        """What this engine reads of a served model, to load it whole beside the one it serves."""
        return served.path

    def available(self, path: Path) -> bool:
        """Whether a model at `path` can be loaded (a remote engine answers for its server)."""
        return path.exists()

    def prompt(self, user: str, history: Sequence[dict[str, str]] = (), system: str | None = None) -> list[int]:
        return prompt_ids(self.tokenizer, self.system_prompt if system is None else system, user, history)

    def fit_prompt(self, user: str, history: Sequence[dict[str, str]], system: str | None,
                   limit: int) -> tuple[list[int], int]:
        """The prompt ids and how many earlier messages were dropped, oldest first (a question with its answer
        as one), so that prompt and `limit` answer tokens fit the context. The system prompt and the user turn
        always stay. In one pass: each message is tokenized once (in one batch) to estimate where the cut
        falls, then the prompt is rendered at that cut and its neighbours only, so the work grows with the
        history's length, never with its square, and the cut is the one a render after each drop would find."""
        history = list(history)
        starts = _turn_starts(history)          # where the kept history may begin, oldest cut first
        room = self.context_length - limit
        if len(history) > 1:
            estimate = self._sizes(history, system)
            kept = [sum(estimate[i:]) for i in starts]      # estimated tokens of the history kept from each start
            base = len(self.prompt(user, (), system))
            k = next((k for k, size in enumerate(kept) if base + size <= room), len(starts) - 1)
        else:
            k = 0
        fits = lambda k: len(self.prompt(user, history[starts[k]:], system)) <= room  # noqa: E731
        while k + 1 < len(starts) and not fits(k):
            k += 1
        while k > 0 and fits(k - 1):
            k -= 1
        return self.prompt(user, history[starts[k]:], system), starts[k]

    def _sizes(self, history: list[dict[str, str]], system: str | None) -> list[int]:
        """Each message's tokens in a prompt, estimated: its content's tokens (one batched call) plus its role's
        framing, measured once on a one-word message."""
        bare = len(self.prompt("", (), system))
        framing = {role: len(self.prompt("", [{"role": role, "content": "x"}], system)) - bare - 1
                   for role in {m["role"] for m in history}}
        contents = self.tokenizer([m["content"] for m in history], add_special_tokens=False)["input_ids"]
        return [len(ids) + framing[m["role"]] for ids, m in zip(contents, history, strict=True)]

    @abstractmethod
    def stream(self, user: str, adapter: str | None, max_new_tokens: int | None = None,
               on_text: TextCallback | None = None, history: Sequence[dict[str, str]] = (),
               system: str | None = None, sampling: Sampling = GREEDY) -> Generation:
        """The answer to `user` after the earlier turns `history`, with `adapter`, calling `on_text`
        with each new piece of text."""

    def generate(self, user: str, adapter: str | None = None, max_new_tokens: int | None = None) -> Generation:
        return self.stream(user, adapter, max_new_tokens)


def _turn_starts(history: list[dict[str, str]]) -> list[int]:
    """The indices the kept history may start at, dropping the oldest turn each time: a question with its
    answer, or a lone message; the last entry (len(history)) keeps none."""
    starts, i = [0], 0
    while i < len(history):
        i += 2 if i + 1 < len(history) and history[i + 1]["role"] == "assistant" else 1
        starts.append(i)
    return starts


class LocalEngine(EngineBase):
    """An engine decoding in this process: every answer chosen by `Decoding` over the logits its subclass
    computes (`_decode`), one answer at a time or several together."""

    def __init__(self, tokenizer: Any, system_prompt: str, settings: EngineConfig,
                 served: ModelIdentity | None = None) -> None:
        super().__init__(tokenizer, system_prompt, settings, served)
        vocab = tokenizer.get_vocab()   # SmolLM2 also ends a text with <|endoftext|>
        self.stop_ids = end_of_turn_ids(tokenizer) | ({vocab["<|endoftext|>"]} if "<|endoftext|>" in vocab else set())
        self.twins = space_twins(tokenizer)

    @property
    def parallel(self) -> int:
        """One unless the subclass decodes several answers together: the others would only wait for the lock."""
        return 1

    def _quotable(self, texts: Sequence[str]) -> Counter:
        """The n-grams of what an answer may copy, counted: the question and its passages, never the prompt's
        instructions or template (a copy of those is the model talking to itself)."""
        n, counts = self.no_repeat_ngram_size, Counter()
        if n:
            for ids in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]:
                counts += ngram_counts(ids, n)
        return counts

    def token_logprob(self, logp: np.ndarray, token: int, top: int) -> TokenLogprob:
        alternatives = np.argpartition(-logp, top)[:top] if top else np.array([], dtype=int)
        alternatives = alternatives[np.argsort(-logp[alternatives])]
        decode = self.tokenizer.decode
        return TokenLogprob(decode([token]), float(logp[token]), tuple((decode([int(t)]), float(logp[t]))
                                                                        for t in alternatives))

    def stream(self, user: str, adapter: str | None, max_new_tokens: int | None = None,
               on_text: TextCallback | None = None, history: Sequence[dict[str, str]] = (),
               system: str | None = None, sampling: Sampling = GREEDY) -> Generation:
        """The answer to `user` after the earlier turns `history`, with `adapter`, calling `on_text`
        with each new piece of text."""
        limit = max_new_tokens or self.max_new_tokens
        with self.lock:
            if adapter is not None and adapter not in self.sizes:
                raise ModelError(f"{adapter}: not loaded in the {self.name} engine")
            start = time.perf_counter()
            prompt, dropped = self.fit_prompt(user, history, system, 1)
            limit = min(limit, self.context_length - len(prompt))
            if limit <= 0:
                raise ContextLengthError(f"the message fills the engine's context ({len(prompt)} tokens of "
                                 f"{self.context_length}); shorten it or raise runtime.engine.context_length")
            if history:
                prompt, dropped = self.fit_prompt(user, history, system, limit)
            source = self._quotable(sampling.quotable or (user,))
        decoding = Decoding(self, limit, sampling, on_text, source, start)
        if sampling.cancelled is not None and sampling.cancelled():   # past its deadline, or its client gone:
            decoding.cancel()                                         # not even the prompt is read
        else:
            # a seeded sample must not hang on the cache: a prompt read in other pieces differs in the last
            # bits, and over a flat distribution that moves which token a seed draws
            self._decode(adapter, prompt, decoding, reuse=sampling.greedy or sampling.seed is None)
        return decoding.generation(len(prompt), dropped)

    @abstractmethod
    def _decode(self, adapter: str | None, prompt: list[int], decoding: Decoding, reuse: bool) -> None:
        """Read `prompt` with `adapter` (None = the served model alone), then feed `decoding` the logits after
        the prompt and after each token it chooses until it is done; `reuse=False`: compute every position
        anew, even where a cache could serve."""


class Decoding:
    """One answer as it is decoded: each step takes the logits after the text so far, controls repetition,
    chooses a token, streams its text and says which token to feed next, or that the answer is done. The
    engines only compute logits, alone or for several answers at once, so every answer is chosen the same way."""

    def __init__(self, engine: LocalEngine, limit: int, sampling: Sampling, on_text: TextCallback | None,
                 source: Counter, start: float) -> None:
        self.engine, self.limit, self.sampling, self.on_text, self.source = engine, limit, sampling, on_text, source
        self.start = start
        self.rng = None if sampling.greedy else np.random.default_rng(sampling.seed)
        self.text = TextStream(engine.tokenizer)
        self.scan = StopScanner(sampling.stop)
        self.hold = SentenceHold() if engine.end_on_sentence else None
        self.ids: list[int] = []
        self.logprobs: list[float] = []
        self.entropies: list[float] = []
        self.tokens: list[TokenLogprob] | None = None if sampling.top_logprobs is None else []
        self.first = 0.0
        self.total = 0.0
        self.reason = "length"
        self.done = False

    def step(self, logits: np.ndarray) -> int | None:
        """The token chosen after `logits`, to be fed next; None when the answer ended (end of turn, a stop
        string, its token budget, or cancelled), its text then complete."""
        engine, sampling = self.engine, self.sampling
        if sampling.cancelled is not None and sampling.cancelled():
            return self.finish("cancelled")
        logits = control_repetition(logits, self.ids, engine.no_repeat_ngram_size, engine.repetition_penalty,
                                    self.source, engine.twins)
        logp, entropy = log_softmax(logits)
        token = choose(logp, sampling, self.rng)
        if not self.logprobs:
            self.first = time.perf_counter() - self.start
        self.logprobs.append(float(logp[token]))
        self.entropies.append(entropy)
        if token in engine.stop_ids:
            return self.finish("stop")
        self.ids.append(token)
        if self.tokens is not None:
            self.tokens.append(engine.token_logprob(logp, token, sampling.top_logprobs or 0))
        piece = self.scan.push(self.text.push(token))
        if self.hold is not None:
            piece = self.hold.push(piece)
        if piece and self.on_text is not None:
            self.on_text(piece)
        if self.scan.stopped:
            return self.finish("stop")
        if len(self.logprobs) >= self.limit:
            return self.finish("length")
        return token

    def cancel(self) -> None:
        """End before the first token."""
        self.finish("cancelled")

    def finish(self, reason: str) -> None:
        """End the answer: release the text held back (a sentence cut at the budget is taken back to its last
        complete one)."""
        self.reason, self.done = reason, True
        tail = self.scan.flush()
        if self.hold is not None:
            tail = self.hold.push(tail) + self.hold.finish(cut=reason != "stop")
        if tail and self.on_text is not None:
            self.on_text(tail)
        self.total = time.perf_counter() - self.start
        return None

    def generation(self, prompt_tokens: int, dropped: int) -> Generation:
        return Generation((self.hold or self.scan).text.strip(), self.ids, self.logprobs, self.entropies,
                          self.reason == "stop" and not self.scan.stopped, self.first, self.total, self.reason,
                          prompt_tokens, dropped, self.tokens)


def build_engine(cfg: ModelConfig, unified: Path | None = None) -> Engine:
    """The engine the config names, ready for the unified answer (`engine.unified` names its adapter, when loaded):
    `unified` is the unified adapter, loaded as one, or with `merge_unified` merged into the base once
    (cached) and served as the model itself, the specialists then being its only adapters."""
    backend = cfg.runtime.engine.backend
    if backend == "openai":
        from pz2.runtime.engine_openai import OpenAIEngine

        engine: Engine = OpenAIEngine.from_config(cfg)
    else:
        from pz2.models.unified import merges, served_model
        from pz2.runtime.engine_transformers import TransformersEngine

        served = served_model(cfg, unified)
        if backend == "llamacpp":
            from pz2.runtime.engine_llamacpp import LlamaCppEngine

            try:
                engine = LlamaCppEngine.from_config(cfg, served)
            except EngineUnavailable as e:
                logger.warning("llama.cpp cannot serve %s (%s): the transformers engine serves it",
                               served.identity.id, e)
                engine = TransformersEngine.from_config(cfg, served)
        else:
            engine = TransformersEngine.from_config(cfg, served)
        if merges(cfg, unified):
            return engine
    if unified is not None and engine.available(unified):
        engine.load(UNIFIED, unified)
    return engine


def engine_answering_as(cfg: ModelConfig, model: Path | None, unified: Path | None) -> tuple[Engine, str | None]:
    """An engine that answers as `model` (an adapter, a full model folder, or None: the served base) and
    the name to answer with: what `pz2 eval generation`, the demo and the benchmarks generate through, so
    they measure the decoder pz2 serves. `unified` is the workspace's unified adapter: `model` may be it,
    and with `merge_unified` the specialists stand on it merged."""
    from pz2.models.unified import merges

    if model is None:
        return build_engine(cfg, None), None
    if not model.exists():
        raise ModelError(f"{model}: no such model folder; train it first (`pz2 train unified` / `pz2 train specialist`)")
    trained = find_trained(model)
    if unified is not None and trained.path == adapter_dir(unified):
        engine = build_engine(cfg, unified)
        return engine, engine.unified
    engine = build_engine(cfg, unified if merges(cfg, unified) else None)
    engine.load("model", model)
    return engine, "model"
