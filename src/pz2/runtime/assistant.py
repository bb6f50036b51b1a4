"""The hybrid assistant: classifier → router → unified model or specialist, one turn at a time.

It owns the per-session memory the seed's scenarios need: the last question (so "네, 전문가 모드로
해주세요" re-asks it of the specialist) and a pending expert-mode offer. Every turn returns, and
appends to `logs/assistant/decisions.jsonl`, the routing record
{route, reason, category, confidence, complexity, latency_ms, specialist_state, sources}.

A specialist answers from the knowledge base (`pz2 kb build`): the passages retrieved for the
question go into its prompt, numbered, and `sources` lists them with whether the answer cited
them. With none above the similarity floor it answers without sources and says so.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pz2.config import ModelConfig, RuntimeConfig
from pz2.errors import ModelError
from pz2.knowledge.grounding import Grounded, Passage
from pz2.knowledge.index import MANIFEST
from pz2.knowledge.retrieval import Retriever
from pz2.models.classifier_model import META_FILE
from pz2.runtime.classifier import ConversationClassifier
from pz2.runtime.language import OFFER_TEXT, offer_text, unreadable_reply
from pz2.runtime.complexity import Complexity, complexity
from pz2.runtime.confidence import CONFIDENCE_FILE, ConfidenceModel
from pz2.runtime.engine import GREEDY, Engine, Generation, Sampling, build_engine
from pz2.runtime.pool import SpecialistPool, SpecialistUnavailable
from pz2.runtime.prediction import Prediction
from pz2.runtime.predictor import UsagePredictor
from pz2.runtime.session import Session, Sessions
from pz2.runtime.router import (
    OFFER,
    SPECIALIST,
    SPECIALISTS,
    UNIFIED,
    Request,
    Route,
    Router,
)
from pz2.workspace import Workspace

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class Options:
    """What a request may set beyond its message (the API sets them; the terminal keeps the defaults)."""

    history: tuple[dict[str, str], ...] | None = None  # earlier turns, oldest first; None: the session remembers
    system: str | None = None              # replaces the configured system prompt
    sampling: Sampling = GREEDY
    max_new_tokens: int | None = None
    model: str | None = None               # None: the router decides; unified | qna | technical: that one answers
    retrieval: bool = True                 # False: a specialist answers from the messages alone (a plain backend)
    provisional: bool = True               # stream the unified answer before the router has kept it
    offers: bool = True                    # someone can accept an expert-mode offer (not batch or single mode)

# (source, piece): source is "unified" or the specialist's name, so a screen can label the stream
TextListener = Callable[[str, str], None]


@dataclass
class Turn:
    message: str
    answer: str
    route: str
    reason: str
    detail: str
    category: str
    confidence: float | None
    complexity: float
    complexity_parts: dict             # the score's components: words, terms, parts, margin
    latency_ms: float
    specialist_state: str
    session: str
    question: str                      # what was answered: the message, or the question it refers back to
    unified_answer: str | None = None
    specialist: str | None = None
    first_token_ms: float | None = None
    classifier: dict = field(default_factory=dict)
    sources: list[dict] = field(default_factory=list)   # passages in the answering prompt, with `cited`
    retrieval_ms: float | None = None
    offer: str | None = None           # the expert-mode offer that follows the answer, in its language
    passages: list[Passage] = field(default_factory=list, repr=False)  # their text, for `/sources`
    generation: Generation | None = field(default=None, repr=False)   # the answer's tokens, usage, finish reason

    def record(self) -> dict:
        """The routing record, as logged and as returned by batch mode and the API."""
        record = asdict(self)
        record.pop("passages")
        record.pop("generation")
        record["dropped_messages"] = self.generation.dropped_messages if self.generation else 0
        return record

    def summary(self) -> str:
        """The routing record in one line, for people."""
        conf = "n/a" if self.confidence is None else f"{self.confidence:.2f}"
        grounded = f" · {len(self.sources)} sources ({self.retrieval_ms:.0f} ms)" if self.sources else ""
        return (f"route {self.route} · {self.reason} ({self.detail}) · category {self.category} · confidence {conf} · "
                f"complexity {self.complexity:.2f} · {self.latency_ms:.0f} ms · specialist {self.specialist_state}"
                f"{grounded}")


@dataclass(frozen=True)
class _Asked:
    """What a turn answers once the session is read: the question (the message, or the one it refers
    back to), its prediction, the explicit request if any, and the history to answer it with."""

    question: str
    prediction: Prediction
    request: Request | None
    history: tuple[dict[str, str], ...]


class _Stream:
    """A turn's answer pieces on their way to the listener: timed from the turn's start, and held back
    while the router may still replace the unified answer with a specialist's."""

    def __init__(self, on_text: TextListener | None) -> None:
        self.on_text, self.start = on_text, time.perf_counter()
        self.first_ms: float | None = None
        self.held: list[tuple[str, str]] = []

    def piece(self, source: str, held: bool = False) -> Callable[[str], None]:
        def emit(text: str) -> None:
            if self.first_ms is None:
                self.first_ms = self.elapsed_ms()
            if held:
                self.held.append((source, text))
            elif self.on_text is not None:
                self.on_text(source, text)
        return emit

    def release(self) -> None:
        if self.on_text is not None:
            for source, text in self.held:
                self.on_text(source, text)
        self.held.clear()

    def elapsed_ms(self) -> float:
        return round((time.perf_counter() - self.start) * 1000, 1)


def passage_room(engine: Engine, question: str, top_k: int) -> int:
    """Tokens the engine's context leaves for passages: beyond the bare prompt, the longest answer and
    the sources' framing (number, title, instruction: about 24 tokens per passage at most)."""
    room = engine.context_length - len(engine.prompt(question)) - engine.max_new_tokens - 24 * top_k - 32
    return max(0, room)


@dataclass
class _Answer:
    """What answers a turn, under which decision, filled in as the turn goes."""

    decision: Route | None             # None until the router has judged the unified answer
    text: str
    gen: Generation | None
    unified_text: str | None = None
    confidence: float | None = None
    specialist: str | None = None
    specialist_state: str = "not needed"
    grounding: Grounded = Grounded()


def unified_parts(ws: Workspace, cfg: ModelConfig) -> tuple[Engine, ConversationClassifier]:
    """The engine ready for the unified answer and the router's classifier: what the assistant and the
    confidence fit (which must see the very answers the router will judge) both stand on."""
    if not (ws.classifier / META_FILE).exists():
        raise ModelError(f"{ws.classifier}: no classifier; the router needs it (`pz2 train classifier`)")
    classifier = ConversationClassifier.load(ws.classifier)
    unified = ws.unified_model / "adapter"
    if not unified.exists():
        logger.warning("%s: no unified adapter yet; the base model answers (`pz2 train unified`)", unified)
    return build_engine(cfg, unified), classifier


class Assistant:
    def __init__(self, engine: Engine, classifier: ConversationClassifier, runtime: RuntimeConfig,
                 specialists: dict[str, Path],
                 confidence: ConfidenceModel | None = None, log_path: Path | None = None,
                 retriever: Retriever | None = None) -> None:
        self.engine = engine
        self.retriever = retriever
        self.classifier = classifier
        self.runtime = runtime
        self.router = Router(runtime.router, runtime.english_only)
        self.pool = SpecialistPool(engine, specialists, runtime.pool.memory_budget_mb)
        self.predictor = UsagePredictor(SPECIALISTS, runtime.pool)
        self.confidence = confidence
        self.log_path = log_path
        self.sessions = Sessions(runtime.session_idle_minutes * 60, runtime.max_sessions, on_end=self.predictor.end)
        self._lock = threading.Lock()

    @classmethod
    def from_workspace(cls, ws: Workspace, overrides: dict | None = None, log: bool = True) -> Assistant:
        """The assistant as model_config.yaml (with dotted `overrides`) configures it: `from_config` on the file."""
        return cls.from_config(ws, ws.model_config(overrides), log)

    @classmethod
    def from_config(cls, ws: Workspace, cfg: ModelConfig, log: bool = True) -> Assistant:
        """The assistant over the workspace's trained models, configured by `cfg`; `log=False` keeps its
        turns out of the decisions log (an evaluation is not usage)."""
        engine, classifier = unified_parts(ws, cfg)
        try:
            confidence = ConfidenceModel.load(ws.unified_model / CONFIDENCE_FILE)
        except ModelError as e:  # a stale fit must not stop the chat, nor `pz2 train confidence` from replacing it
            logger.warning("%s; until then the unified answer stands", e)
            confidence = None
        specialists = {kind: ws.specialist(kind) for kind in SPECIALISTS}
        retriever = None
        if (ws.knowledge / MANIFEST).is_file():
            retriever = Retriever.load(ws.knowledge, cfg)
        else:
            logger.warning("%s: no knowledge base; specialists answer without sources (`pz2 kb build`)", ws.knowledge)
        assistant = cls(engine, classifier, cfg.runtime, specialists, confidence,
                        ws.assistant_logs / "decisions.jsonl" if log else None, retriever)
        assistant.warm_up()
        return assistant

    def warm_up(self) -> None:
        """One classification and one generated token, so the first real turn is not the slow one
        (lazy initialisation in torch and llama.cpp costs seconds on the first call)."""
        self.classifier.predict(["hello"])
        self.engine.generate("hello", self.engine.unified, max_new_tokens=1)

    def session(self, name: str) -> Session:
        return self.sessions.get(name)

    def pending_offer(self, session: str) -> bool:
        return self.session(session).offer is not None

    def _recalled(self, history: tuple[dict[str, str], ...]) -> tuple[Session, int]:
        """What a session would remember of a conversation sent whole (the API is stateless): its last
        question, offered expert mode if the reply ends with the offer; and how many messages precede
        that question, so a re-asked question is answered without its first answer in the prompt."""
        users = [i for i, m in enumerate(history) if m["role"] == "user"]
        if not users:
            return Session(), 0
        question = history[users[-1]]["content"]
        last = (question, self.classifier.predict([question])[0])
        offered = any(m["role"] == "assistant" and m["content"].rstrip().endswith(tuple(OFFER_TEXT.values()))
                      for m in history[users[-1] + 1:])
        return Session(last=last, offer=last if offered else None), users[-1]

    def ask(self, message: str, session: str = "default", expert: bool = False,
            on_text: TextListener | None = None, options: Options = Options()) -> Turn:
        """Answer one message. `expert` is the `/expert` command or the API's flag."""
        stream = _Stream(on_text)
        state, asked = self._read(message, session, expert, options)
        cx = complexity(asked.question, asked.prediction, self.runtime.router.complexity_weights)
        answer = self._unreadable(asked, stream) or self._answer(asked, cx, stream, options)
        if answer.decision.route != SPECIALIST:
            stream.release()    # the unified answer stands: what was held back goes out now
        self._remember(state, session, asked, answer.decision)
        turn = self._turn(message, session, asked, cx, answer, stream)
        self._log(turn)
        return turn

    def _read(self, message: str, session: str, expert: bool, options: Options) -> tuple[Session, _Asked]:
        """The session's memory (or, over the stateless API, what the history implies) and what the message
        asks: its own question, or, for a bare expert request ("네, 전문가 모드로 해주세요"), the last one."""
        history = options.history
        state, before = (self.session(session), 0) if history is None else self._recalled(history)
        request = self.router.request(message, expert, offered=state.offer is not None)
        earlier = state.offer or state.last
        state.offer = None
        if request and earlier is not None and self.router.refers_back(message):
            (question, prediction), history = earlier, history and history[:before]
        else:
            question, prediction = message, self.classifier.predict([message])[0]
        return state, _Asked(question, prediction, request, tuple(history or ()))

    def _unreadable(self, asked: _Asked, stream: _Stream) -> _Answer | None:
        """The router's honest reply to a question the base cannot read, without generating."""
        decision = self.router.unreadable(asked.question, asked.prediction)
        if decision is None:
            return None
        text = unreadable_reply(asked.question)
        stream.piece(UNIFIED)(text)
        return _Answer(decision, text, None)

    def _answer(self, asked: _Asked, cx: Complexity, stream: _Stream, options: Options) -> _Answer:
        """Route before generating; else the unified model answers and the router judges its confidence;
        then a specialist answers when the decision says so."""
        prompting = {"history": asked.history, "system": options.system, "sampling": options.sampling,
                     "max_new_tokens": options.max_new_tokens}
        if options.model is not None:
            decision = self.router.requested(options.model, asked.prediction)
        else:
            decision = self.router.before(asked.question, asked.prediction, cx, asked.request)
        answer = _Answer(decision, "", None)
        if decision is None or decision.route == UNIFIED:
            use_kb = self.runtime.retrieval.unified and options.retrieval
            answer.grounding = self._ground(asked.question) if use_kb else Grounded(asked.question)
            held = decision is None and not options.provisional   # the router may still replace it
            answer.gen = self.engine.stream(answer.grounding.message, self.engine.unified, on_text=stream.piece(UNIFIED, held),
                                            **prompting)
            answer.text = answer.unified_text = answer.gen.text
            if decision is None or options.model is not None:
                answer.confidence = self.confidence(answer.gen, asked.prediction) if self.confidence else None
            if decision is None:
                answer.decision = self.router.after(asked.prediction, answer.confidence, options.offers)
        if answer.decision.route == SPECIALIST:
            self._specialist(asked.question, answer, stream, prompting, options.retrieval)
        return answer

    def _remember(self, state: Session, session: str, asked: _Asked, decision: Route) -> None:
        """What the next turn may refer back to, and what the predictor learns for preloading."""
        if decision.route == OFFER:
            state.offer = (asked.question, asked.prediction)
        state.last = (asked.question, asked.prediction)
        self._predict_next(session, decision.category if decision.route == SPECIALIST else asked.prediction.label)

    def _turn(self, message: str, session: str, asked: _Asked, cx: Complexity, answer: _Answer,
              stream: _Stream) -> Turn:
        d, p = answer.decision, asked.prediction
        return Turn(
            message=message, answer=answer.text or "", route=d.route, reason=d.reason, detail=d.detail,
            category=d.category, confidence=answer.confidence, complexity=round(cx.score, 4),
            complexity_parts=cx.as_dict(), latency_ms=stream.elapsed_ms(), specialist_state=answer.specialist_state,
            session=session, question=asked.question, unified_answer=answer.unified_text,
            specialist=answer.specialist, first_token_ms=stream.first_ms,
            classifier={"label": p.label, "probability": round(p.confidence, 4), "note": p.note},
            sources=answer.grounding.sources(answer.text or ""), retrieval_ms=answer.grounding.ms,
            offer=offer_text(asked.question) if d.route == OFFER else None,
            passages=answer.grounding.passages, generation=answer.gen)

    def _ground(self, question: str) -> Grounded:
        """The question with the passages retrieved for it; the bare question without a knowledge base."""
        if self.retriever is None:
            return Grounded(question)
        room = passage_room(self.engine, question, self.runtime.retrieval.top_k)
        return self.retriever.ground(question, self.engine.tokenizer, room)

    def _specialist(self, question: str, answer: _Answer, stream: _Stream, prompting: dict, retrieval: bool) -> None:
        """The specialist's grounded answer into `answer`; when the specialist cannot load, the unified
        answer (generated now if it was not yet) with the reason."""
        name = answer.decision.category
        try:
            with self.pool.use(name) as how:
                answer.grounding = self._ground(question) if retrieval else Grounded(question)
                gen = self.engine.stream(answer.grounding.message, name, on_text=answer.grounding.prefix(stream.piece(name)),
                                         **prompting)
            answer.text, answer.gen = answer.grounding.finish(gen.text), gen
            answer.specialist_state, answer.specialist = f"{name}: {how}", name
        except SpecialistUnavailable as e:
            logger.warning("%s", e)
            answer.grounding = Grounded()
            if answer.gen is None:
                answer.gen = self.engine.stream(question, self.engine.unified, on_text=stream.piece(UNIFIED), **prompting)
                answer.unified_text = answer.gen.text
            answer.text = answer.gen.text
            answer.decision = self.router.fallback(answer.decision, str(e))
            answer.specialist_state = self.pool.state(name)

    def _predict_next(self, session: str, category: str) -> None:
        self.predictor.observe(session, category)
        if not self.runtime.pool.preload:
            return
        name, p = self.predictor.predict(session)
        if p < self.runtime.pool.preload_min_probability:
            return
        victims = self.pool.would_evict(name)
        if all(self.predictor.demand(v, excluding=session) < p for v in victims):
            self.pool.preload(name)

    def _log(self, turn: Turn) -> None:
        logger.info("route=%s reason=%s category=%s confidence=%s complexity=%.2f latency_ms=%.0f specialist=%s",
                    turn.route, turn.reason, turn.category, turn.confidence, turn.complexity, turn.latency_ms,
                    turn.specialist_state)
        if self.log_path is None:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, self.log_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"time": time.time(), **turn.record()}, ensure_ascii=False) + "\n")

    def status(self) -> dict:
        return {"engine": self.engine.name, "serving": (self.engine.base or {}).get("id", "?"),
                "unified": self.engine.unified or "merged into the served model, or none trained",
                "confidence_model": self.confidence.metrics if self.confidence else None,
                "pool": self.pool.snapshot(), "router": self.runtime.router.model_dump()}

    def close(self) -> None:
        self.pool.close()

