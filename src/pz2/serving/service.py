"""The work behind /v1/chat/completions: admit a request, answer it with the assistant, reply.

The assistant is synchronous and holds the engine while it generates, so each admitted request
runs in a worker thread; its text pieces cross to the event loop through a queue, which the
server-sent-events generator drains. A client that leaves is noticed wherever its request is: in
line (it leaves the line), generating without streaming (asked every WATCH_S), or streaming (the
server closes the generator); the generation itself checks once per token, so the slot is free within
a fraction of a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pz2.config import ServingConfig
from pz2.errors import ContextLengthError, Pz2Error
from pz2.models.artifacts import first_line
from pz2.runtime.assistant import Assistant, UnknownTurn
from pz2.runtime.engine import Generation
from pz2.runtime.turn import Turn
from pz2.serving.errors import INTERNAL, NotFoundError, NotReadyError, RequestError
from pz2.serving.metrics import Metrics
from pz2.serving.protocol import (
    MODELS,
    AssistantMessage,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    Choice,
    ChoiceLogprobs,
    ChunkChoice,
    Delta,
    Feedback,
    FeedbackRequest,
    ModelCard,
    ModelList,
    RoutingRecord,
    TokenLogprob,
    TopLogprob,
    Usage,
    completion_id,
)
from pz2.serving.scheduler import FairScheduler

logger = logging.getLogger(__name__)

_DONE = object()   # end of a job's text pieces
WATCH_S = 0.1      # how often a waiting or non-streaming request asks whether its client is still there
_RECORD_DROPS = ("message", "answer", "session", "features")   # the response carries these; features are the log's


def _logprobs(gen: Generation | None) -> ChoiceLogprobs | None:
    if gen is None or gen.token_logprobs is None:
        return None
    return ChoiceLogprobs(content=[
        TokenLogprob(token=t.token, logprob=t.logprob, bytes=list(t.token.encode()),
                     top_logprobs=[TopLogprob(token=s, logprob=lp, bytes=list(s.encode())) for s, lp in t.top])
        for t in gen.token_logprobs])


def _usage(gen: Generation | None) -> Usage:
    prompt, completion = (gen.prompt_tokens, len(gen.token_ids)) if gen else (0, 0)
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


@dataclass
class _Job:
    """One admitted request: its text pieces as they come, its turn when done."""

    body: ChatCompletionRequest
    arrived: float
    id: str = field(default_factory=lambda: uuid.uuid4().hex)   # the turn's, and in chatcmpl-<id> the response's
    pieces: asyncio.Queue = field(default_factory=asyncio.Queue)
    gone: threading.Event = field(default_factory=threading.Event)   # the client left
    deadline: float = 0.0
    first_piece: float | None = None
    turn: asyncio.Future | None = None

    def cancelled(self) -> bool:
        return self.gone.is_set() or time.monotonic() > self.deadline


class ChatService:
    def __init__(self, assistant: Assistant, serving: ServingConfig, metrics: Metrics, base_name: str,
                 loader: ThreadPoolExecutor) -> None:
        """`loader`: the one-thread executor that loaded the assistant; an in-process engine answers on it."""
        self.assistant = assistant
        self.serving = serving
        self.metrics = metrics
        self.base_name = base_name
        running = min(serving.max_running, assistant.engine.parallel)
        self.scheduler = FairScheduler(running, serving.max_waiting, serving.retry_after_s)
        self._workers = loader if running == 1 else ThreadPoolExecutor(running, thread_name_prefix="pz2-serve")
        pool = assistant.pool
        pool.on_load = metrics.adapter_loaded
        metrics.watch(lambda: self.scheduler.running, lambda: self.scheduler.waiting, pool.used_bytes, pool.budget)

    def models(self) -> ModelList:
        """The router and the models it routes to; adapters name the base as their parent, as vLLM lists them."""
        cards = [ModelCard(id=name, root=self.base_name if target is None else target,
                           parent=None if target is None else self.base_name) for name, target in MODELS.items()]
        return ModelList(data=cards)

    async def submit(self, body: ChatCompletionRequest, disconnected: Callable[[], Awaitable[bool]]) -> _Job | None:
        """Admit the request (429 when the line is full, 503 past its deadline) and start answering it; None
        when its client left while it waited (it leaves the line at once, never taking a slot)."""
        if body.model not in MODELS:
            raise NotFoundError(f"the model `{body.model}` does not exist; choose one of {list(MODELS)}",
                                    param="model", code="model_not_found")
        self._check_size(body)
        self._check_fits(body)
        if body.ignored():
            logger.info("fields %s were present in the request but ignored", body.ignored())
        job = _Job(body, time.monotonic())
        job.deadline = job.arrived + self.serving.request_timeout_s
        if not await self._slot(job, disconnected):
            return None
        loop = asyncio.get_running_loop()

        def on_text(source: str, piece: str) -> None:
            loop.call_soon_threadsafe(job.pieces.put_nowait, piece)

        def answer() -> Turn:
            try:
                options = body.to_options(self.serving.max_tokens, job.cancelled)
                return self.assistant.ask(body.messages[-1].content, session=f"api:{body.user or 'anonymous'}",
                                          expert=body.expert, on_text=on_text, options=options, turn_id=job.id)
            finally:
                loop.call_soon_threadsafe(job.pieces.put_nowait, _DONE)
                loop.call_soon_threadsafe(self.scheduler.release)

        job.turn = asyncio.ensure_future(loop.run_in_executor(self._workers, answer))
        return job

    async def _slot(self, job: _Job, disconnected: Callable[[], Awaitable[bool]]) -> bool:
        """Wait in line for a slot, watching the client: False when it left first."""
        slot = asyncio.ensure_future(self.scheduler.acquire())
        try:
            while not (await asyncio.wait({slot}, timeout=WATCH_S))[0]:
                if time.monotonic() > job.deadline:
                    raise NotReadyError(f"no slot within {self.serving.request_timeout_s:g} s "
                                        "(runtime.serving.request_timeout_s); retry later", code="timeout")
                if await disconnected():
                    return False
            slot.result()   # OverloadedError when the line was full
            return True
        finally:
            if not slot.done():
                slot.cancel()   # leaves the line; a slot handed over meanwhile is passed on
                with contextlib.suppress(asyncio.CancelledError):
                    await slot

    def _check_size(self, body: ChatCompletionRequest) -> None:
        """The request's own limits, before any tokenizing: messages and characters (runtime.serving)."""
        if len(body.messages) > self.serving.max_messages:
            raise RequestError(f"{len(body.messages)} messages; at most {self.serving.max_messages} "
                               "(runtime.serving.max_messages): send the recent ones", param="messages",
                               code="too_many_messages")
        chars = sum(len(m.content) for m in body.messages)
        if chars > self.serving.max_chars:
            raise RequestError(f"{chars} characters in the messages; at most {self.serving.max_chars} "
                               "(runtime.serving.max_chars)", param="messages", code="messages_too_long")

    def _check_fits(self, body: ChatCompletionRequest) -> None:
        """Refuse, before it waits for a slot, a request whose system and last message alone exceed the
        context (earlier turns are dropped to fit; these two never are)."""
        engine = self.assistant.engine
        options = body.to_options(self.serving.max_tokens, None)
        prompt, _ = engine.fit_prompt(body.messages[-1].content, options.history or (), options.system, 1)
        if len(prompt) >= engine.context_length:
            raise ContextLengthError(f"the system and last messages take {len(prompt)} tokens of the "
                                     f"{engine.context_length}-token context; shorten them")

    def _finish(self, job: _Job, turn: Turn) -> tuple[str, RoutingRecord]:
        """The finish reason and the routing record of a done job; its metrics recorded."""
        gen = turn.generation
        model = job.body.model
        self.metrics.routes.labels(turn.route, turn.reason).inc()
        if gen is not None:
            self.metrics.prompt_tokens.labels(model).inc(gen.prompt_tokens)
            self.metrics.generation_tokens.labels(model).inc(len(gen.token_ids))
        if job.first_piece is not None:
            self.metrics.first_token.labels(model).observe(job.first_piece - job.arrived)
        self.metrics.latency.labels(model).observe(time.monotonic() - job.arrived)
        timed_out = gen is not None and gen.finish_reason == "cancelled" and not job.gone.is_set()
        if timed_out:
            logger.warning("request ran past runtime.serving.request_timeout_s: answer cut")
        record = RoutingRecord(**{k: v for k, v in turn.record().items() if k not in _RECORD_DROPS}, timed_out=timed_out)
        reason = "stop" if gen is None or gen.finish_reason == "stop" else "length"
        return reason, record

    async def complete(self, job: _Job, disconnected: Callable[[], Awaitable[bool]]) -> ChatCompletionResponse:
        """The whole answer as one response; stops generating if the client leaves meanwhile."""
        assert job.turn is not None
        while not job.turn.done():
            await asyncio.wait({job.turn}, timeout=WATCH_S)
            if not job.turn.done() and await disconnected():
                job.gone.set()
        turn = job.turn.result()
        job.first_piece = job.first_piece or time.monotonic()
        reason, record = self._finish(job, turn)
        content = turn.answer + (f"\n\n{turn.offer}" if turn.offer else "")
        return ChatCompletionResponse(id=completion_id(job.id), model=job.body.model, usage=_usage(turn.generation),
                                      pz2=record, choices=[
            Choice(message=AssistantMessage(content=content), logprobs=_logprobs(turn.generation),
                   finish_reason=reason)])

    async def stream(self, job: _Job) -> AsyncIterator[str]:
        """Server-sent events in OpenAI's chunk format: the role, text as it comes, the finishing chunk with
        the routing record, the usage chunk when asked for, `[DONE]`."""
        assert job.turn is not None
        ident, created = completion_id(job.id), int(time.time())

        def event(choices: list[ChunkChoice], pz2: RoutingRecord | None = None, **extra: Any) -> str:
            chunk = ChatCompletionChunk(id=ident, created=created, model=job.body.model, choices=choices, **extra)
            payload = chunk.model_dump(mode="json", exclude_none=True)
            if pz2 is not None:   # the record whole, its nulls included, as in a non-streamed response
                payload["pz2"] = pz2.model_dump(mode="json")
            return f"data: {json.dumps(payload, ensure_ascii=False, separators=(',', ':'))}\n\n"

        try:
            yield event([ChunkChoice(delta=Delta(role="assistant", content=""))])
            while (piece := await job.pieces.get()) is not _DONE:
                job.first_piece = job.first_piece or time.monotonic()
                yield event([ChunkChoice(delta=Delta(content=piece))])
        except BaseException:   # the client left: the server closed this generator
            job.gone.set()
            raise
        try:
            turn = await job.turn
        except Exception as e:  # the status line has gone out: the error travels as an event, as OpenAI's do
            logger.exception("the answer failed mid-stream")
            yield self.error_event(first_line(e) if isinstance(e, Pz2Error) else INTERNAL)
            yield "data: [DONE]\n\n"
            return
        if turn.offer:
            yield event([ChunkChoice(delta=Delta(content=f"\n\n{turn.offer}"))])
        reason, record = self._finish(job, turn)
        yield event([ChunkChoice(delta=Delta(), logprobs=_logprobs(turn.generation), finish_reason=reason)],
                    pz2=record)
        if job.body.stream_options is not None and job.body.stream_options.include_usage:
            yield event([], usage=_usage(turn.generation))
        yield "data: [DONE]\n\n"

    @staticmethod
    def error_event(message: str) -> str:
        """An error that happens after the stream began: sent as an event, as OpenAI's servers do."""
        return f"data: {json.dumps({'error': {'message': message, 'type': 'server_error'}})}\n\n"

    def feedback(self, body: FeedbackRequest) -> Feedback:
        """Record a person's rating of an answer this server gave (404 for an id it does not know)."""
        try:
            event = self.assistant.feedback(body.turn, body.rating, "api", body.comment)
        except UnknownTurn:
            raise NotFoundError(f"no recent answer has the id {body.id!r}: rate a response of this server by its "
                                "`id`", param="id", code="response_not_found") from None
        return Feedback(id=body.id, rating=event.rating)

    def close(self) -> None:
        self._workers.shutdown(wait=True, cancel_futures=True)
