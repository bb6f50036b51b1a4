"""Continuous batching for the llama.cpp engine: concurrent answers of one model decoded together.

One llama.cpp context holds `slots` KV-cache streams (`kv_unified` off: each answer attends over its
own stream only, as alone; one shared cache changed 5 of 8 answers here; what still parts an answer
decoded together from the same answer alone, a float32 LoRA adapter's rounding: README, "Concurrency"). One thread, the decoder, owns the context. Each round it gives waiting answers free slots,
picks the next adapter (round robin among those with work), decodes in one call the next token of
each of that adapter's running answers, then reads one new prompt of that adapter in a call of its
own (at most `n_batch` tokens of it, so a long prompt holds the others back for one call at a time).
A LoRA adapter belongs to the context, not to a sequence, hence one call per adapter; the KV entries
an answer computed stay its own whatever adapter the next call uses.

Prefix cache: a slot keeps the tokens, and the adapter, of the last answer it held. A new answer starts
from the longest cached prefix of its prompt under its adapter, its slot's own or copied from another
slot (the system prompt, most of a short prompt), so it reads only its own tokens.

Measured on 2 cores (README, "Under load"): a step of 8 answers takes 4.2x the time of one, so batching
gives at most 1.9x the tokens/s here, and prompts, which are compute-bound, gain nothing.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pz2.errors import ModelError
from pz2.runtime.engine import Decoding

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class _Sequence:
    adapter: str | None
    handle: Any                 # the adapter's llama.cpp handle; None: the model alone
    prompt: list[int]
    decoding: Decoding
    reuse: bool
    slot: int = -1
    fed: int = 0                # tokens of prompt + answer whose KV entries are computed
    feed: list[int] = field(default_factory=list)   # tokens to read next: the prompt's rest, then each chosen one
    answering: bool = False     # the prompt is read: `feed` holds the last chosen token
    abandoned: bool = False     # its caller stopped waiting (Ctrl-C): dropped at its next step
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


@dataclass
class _Slot:
    adapter: str | None = None
    tokens: list[int] = field(default_factory=list)   # whose KV entries the slot holds, from position 0
    busy: bool = False
    used: int = 0               # when it was last taken: of equal slots, the least recently used is taken


def _common(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    k = 0
    while k < n and a[k] == b[k]:
        k += 1
    return k


class BatchDecoder:
    """The decoder thread over one model's batched context. `run` blocks its caller until the sequence is
    done; `threads` says, for each newly admitted answer, how many threads to decode on."""

    def __init__(self, lib: Any, model: Any, context_params: Any, slots: int, context_length: int,
                 threads: Callable[[], int], n_batch: int = 512) -> None:
        """With one slot there is no decoder thread: each answer is decoded on its caller's thread, as before
        batching. torch and llama.cpp share one OpenMP runtime, whose teams belong to the calling thread: driven
        from a second thread, llama.cpp met the spinning team torch left in the first (classifier calls between
        answers: 45 instead of 75 answer tokens/s)."""
        self.lib, self.n_batch, self.threads = lib, n_batch, threads
        params = lib.llama_context_default_params()
        ctypes.pointer(params)[0] = context_params
        params.n_ctx, params.n_seq_max, params.kv_unified = context_length * slots, slots, False
        params.n_batch = params.n_ubatch = n_batch
        self.ctx = lib.llama_init_from_model(model, params)
        if not self.ctx:
            raise ModelError(f"llama.cpp could not make a context of {slots} x {context_length} tokens "
                             "(runtime.engine.parallel x context_length): lower them")
        self.memory = lib.llama_get_memory(self.ctx)
        self.batch = lib.llama_batch_init(n_batch, 0, 1)
        self.n_vocab = lib.llama_vocab_n_tokens(lib.llama_model_get_vocab(model))
        self.slots = [_Slot() for _ in range(slots)]
        self.adapter: Any = None   # the handle set on the context
        self.admissions = 0
        self._waiting: list[_Sequence] = []
        self._running: list[_Sequence] = []
        self._turn: list[str | None] = []   # adapters in the order they get the next call
        self._tasks: list[tuple[Callable[[], None], threading.Event]] = []   # run between rounds
        self._cv = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        if slots > 1:
            self._thread = threading.Thread(target=self._loop, name="pz2-decoder", daemon=True)
            self._thread.start()

    def run(self, adapter: str | None, handle: Any, prompt: list[int], decoding: Decoding, reuse: bool) -> None:
        """Decode `prompt`'s answer with the adapter `handle` (named `adapter`) beside whatever else is running."""
        seq = _Sequence(adapter, handle, prompt, decoding, reuse)
        with self._cv:
            if self._closed:
                raise ModelError("the engine is closed")
            self._waiting.append(seq)
            if self._thread is None:
                self._decode_here(seq)
            else:
                self._cv.notify()
        if self._thread is not None:
            try:
                seq.done.wait()
            except BaseException:
                seq.abandoned = True
                raise
        if seq.error is not None:
            raise seq.error

    def _decode_here(self, seq: _Sequence) -> None:
        """One slot: the caller's thread runs the rounds until its answer is done (under `_cv`)."""
        try:
            while not seq.done.is_set():
                self._round([], self._admit())
        except BaseException:   # Ctrl-C on the caller's thread: nothing is left half-decoded
            for other in list(self._running):
                self.slots[other.slot].tokens = []
                self._end(other, None)
            raise

    def forget(self, handle: Any) -> None:
        """Take the adapter `handle` off the context (before it is freed), between two rounds."""
        def off() -> None:
            if self.adapter is handle:
                self._use(None)
        self._between_rounds(off)

    def _between_rounds(self, task: Callable[[], None]) -> None:
        if self._thread is None:
            with self._cv:
                task()
            return
        done = threading.Event()
        with self._cv:
            if self._closed:
                return
            self._tasks.append((task, done))
            self._cv.notify()
        done.wait()

    def close(self) -> None:
        """Stop the thread (answers still in flight fail) and free the context; again: nothing."""
        with self._cv:
            if self._closed:
                return
            self._closed = True
            self._cv.notify()
        if self._thread is not None:
            self._thread.join()
        self.lib.llama_batch_free(self.batch)
        self.lib.llama_free(self.ctx)

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._closed and not self._running and not self._waiting and not self._tasks:
                    self._cv.wait()
                tasks, self._tasks = self._tasks, []
                if self._closed:
                    for seq in self._waiting + self._running:
                        self._end(seq, ModelError("the engine closed before the answer was done"))
                    for _, done in tasks:
                        done.set()
                    return
                admitted = self._admit()
            self._round(tasks, admitted)
            del tasks, admitted   # nothing of a done answer stays referenced while the thread waits

    def _round(self, tasks: list[tuple[Callable[[], None], threading.Event]], admitted: list[_Sequence]) -> None:
        try:
            for task, done in tasks:
                try:
                    task()
                finally:
                    done.set()
            for seq in admitted:
                self._place(seq)
            if admitted:
                n = self.threads()
                self.lib.llama_set_n_threads(self.ctx, n, n)
            if self._running:
                self._step()
        except Exception as e:   # llama.cpp failed: every answer in flight fails with it, the decoder goes on
            logger.exception("batched decoding failed")
            for seq in list(self._running):
                self.slots[seq.slot].tokens = []   # its cache is no prefix to trust
                self._end(seq, e)

    def _admit(self) -> list[_Sequence]:
        """Waiting sequences into free slots, first come first served. llama.cpp computes together only
        sequences in consecutive slots (a KV stream each: `split_equal` with `sequential`), and each run of
        consecutive slots in a call costs a pass over the weights (4 answers a step: 19 ms in slots 0-3, 32 ms in
        0, 2, 4, 6; benchmarks/llamacpp_batching.py). So a sequence takes a free slot next to a running one of
        its adapter, then the one with the longest cached prefix of its prompt, then the least recently used;
        a prefix it lacks is copied in (`_place`)."""
        admitted = []
        while self._waiting:
            free = [i for i, s in enumerate(self.slots) if not s.busy]
            if not free:
                break
            seq = self._waiting.pop(0)
            mine = {s.slot for s in self._running if s.adapter == seq.adapter}

            def score(i: int) -> tuple[bool, int, int]:
                s = self.slots[i]
                shared = _common(s.tokens, seq.prompt) if seq.reuse and s.adapter == seq.adapter else 0
                return bool({i - 1, i + 1} & mine), shared, -s.used

            seq.slot = max(free, key=score)
            self.admissions += 1
            self.slots[seq.slot].busy, self.slots[seq.slot].used = True, self.admissions
            self._running.append(seq)
            if seq.adapter not in self._turn:
                self._turn.append(seq.adapter)
            admitted.append(seq)
        return admitted

    def _place(self, seq: _Sequence) -> None:
        """Keep the slot's cached prefix of the prompt (or copy a longer one from another slot of the same
        adapter), drop the rest; at least the prompt's last token is read, for its logits."""
        slot = self.slots[seq.slot]
        limit = len(seq.prompt) - 1
        keep = min(_common(slot.tokens, seq.prompt), limit) if seq.reuse and slot.adapter == seq.adapter else 0
        donor, best = -1, keep
        if seq.reuse:
            for i, other in enumerate(self.slots):
                shared = min(_common(other.tokens, seq.prompt), limit)
                if i != seq.slot and other.adapter == seq.adapter and shared > best:
                    donor, best = i, shared
        if donor >= 0:   # between streams llama.cpp copies a whole stream, then the donor's rest is dropped
            self.lib.llama_memory_seq_cp(self.memory, donor, seq.slot, -1, -1)
            keep = best
        self.lib.llama_memory_seq_rm(self.memory, seq.slot, keep, -1)
        slot.adapter, slot.tokens = seq.adapter, seq.prompt[:keep]
        seq.fed, seq.feed = keep, seq.prompt[keep:]

    def _step(self) -> None:
        """The next adapter's turn: one decode call for the next token of each of its answers, then one for the
        oldest unread prompt (at most `n_batch` tokens of it). A prompt is read in a call of its own, in the pieces
        it would be read in alone: beside other sequences llama.cpp would take its first token with theirs."""
        adapter = self._turn.pop(0)
        group = [s for s in self._running if s.adapter == adapter]
        if not group:
            return
        self._turn.append(adapter)
        if group[0].handle is not self.adapter:
            self._use(group[0].handle)
        answering = sorted((s for s in group if s.answering), key=lambda s: s.slot)   # consecutive slots: one pass
        if answering:
            self._decode([(s, 1) for s in answering])
        reading = next((s for s in group if not s.answering), None)
        if reading is not None:
            self._decode([(reading, min(len(reading.feed), self.n_batch))])

    def _decode(self, parts: list[tuple[_Sequence, int]]) -> None:
        """Feed each sequence its next `take` tokens in one call; a sequence fed all it had gets its next token."""
        b = self.batch
        n = 0
        for seq, take in parts:
            for k in range(take):
                b.token[n], b.pos[n], b.n_seq_id[n] = seq.feed[k], seq.fed + k, 1
                b.seq_id[n][0] = seq.slot
                b.logits[n] = k == take - 1 and take == len(seq.feed)
                n += 1
        b.n_tokens = n
        status = self.lib.llama_decode(self.ctx, b)
        if status != 0:
            raise ModelError(f"llama.cpp could not decode (status {status})")
        n = 0
        for seq, take in parts:
            self.slots[seq.slot].tokens += seq.feed[:take]
            seq.fed += take
            n += take
            seq.feed = seq.feed[take:]
            if seq.feed:
                continue
            if seq.abandoned:
                self._end(seq, None)
                continue
            try:
                logits = np.ctypeslib.as_array(self.lib.llama_get_logits_ith(self.ctx, n - 1), shape=(self.n_vocab,))
                token = seq.decoding.step(logits.copy())
            except Exception as e:   # this answer's own failure (its client's callback): the others go on
                self._end(seq, e)
                continue
            if token is None:
                self._end(seq, None)
            else:
                seq.feed, seq.answering = [token], True

    def _use(self, handle: Any) -> None:
        if handle is None:
            status = self.lib.llama_set_adapters_lora(self.ctx, None, 0, None)
        else:
            handles = (self.lib.llama_adapter_lora_p_ctypes * 1)(handle)
            status = self.lib.llama_set_adapters_lora(self.ctx, handles, 1, (ctypes.c_float * 1)(1.0))
        if status != 0:
            raise ModelError("llama.cpp could not switch adapters")
        self.adapter = handle

    def _end(self, seq: _Sequence, error: BaseException | None) -> None:
        if seq.slot >= 0:
            self._running.remove(seq)
            self.slots[seq.slot].busy = False
        seq.error = error
        seq.done.set()
