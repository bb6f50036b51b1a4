"""The hybrid assistant: classifier → router → unified model or specialist, one turn at a time.

It orchestrates a turn and nothing else: the router (runtime/router.py) makes every decision, the
session store (runtime/session.py) remembers what "네, 전문가 모드로 해주세요" refers back to, the
knowledge base grounds the answer (knowledge/grounding.py), the pool loads specialists and the
preloader (runtime/preload.py) loads the next one ahead; each turn's routing record (runtime/turn.py)
goes to `logs/assistant/decisions.jsonl`, and ratings of its answers, said or implied (an accepted offer),
to `feedback.jsonl` (runtime/append_log.py, runtime/feedback.py).

A specialist answers from the knowledge base (`pz2 kb build`): the passages retrieved for the
question go into its prompt, numbered, and `sources` lists them with whether the answer cited
them. With none above the similarity floor it answers without sources and says so.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

from pz2.config import ModelConfig, RuntimeConfig
from pz2.errors import ModelError
from pz2.knowledge.grounding import PROMPT_FRAMING, Grounded
from pz2.knowledge.index import MANIFEST
from pz2.knowledge.retrieval import Retriever, Search
from pz2.models.classifier_model import META_FILE
from pz2.runtime.classifier import ConversationClassifier
from pz2.runtime.complexity import Complexity, complexity
from pz2.runtime.confidence import CONFIDENCE_FILE, ConfidenceModel
from pz2.runtime.append_log import AppendLog
from pz2.runtime.engine import Engine, Generation, Sampling, build_engine
from pz2.runtime.feedback import DECISIONS_FILE, EXPLICIT, FEEDBACK_FILE, RATINGS, Feedback
from pz2.runtime.language import (
    english_coverage,
    english_notice,
    english_rendering,
    offer_text,
    reply_language,
    unreadable_reply,
)
from pz2.runtime.pool import SpecialistPool, SpecialistUnavailable
from pz2.runtime.prediction import Prediction
from pz2.runtime.predictor import UsagePredictor
from pz2.runtime.preload import Preloader
from pz2.runtime.router import (
    OFFER,
    SPECIALIST,
    SPECIALISTS,
    UNIFIED,
    Request,
    Route,
    Router,
)
from pz2.runtime.session import Session, Sessions, recall
from pz2.runtime.turn import AnswerStream, Options, TextListener, Turn
from pz2.runtime.verification import Check, check
from pz2.workspace import Workspace

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class _Asked:
    """What a turn answers once the session is read: the question (the message, or the one it refers
    back to), its prediction, the explicit request if any, and the history to answer it with."""

    question: str
    prediction: Prediction
    request: Request | None
    history: tuple[dict[str, str], ...]
    follows: str | None = None       # the turn whose question this one answers again
    text: str = ""                   # what the models read: the question, or what an English-only one can of it

    @property
    def rendered(self) -> bool:
        """The models read an English rendering of a question the base reads only in part."""
        return self.text != self.question


def passage_room(engine: Engine, question: str, top_k: int, budget: int) -> int:
    """Tokens the engine's context leaves for passages: beyond the bare prompt, the longest answer (`budget`
    tokens) and the sources' framing (number, title, instruction: about 24 tokens per passage at most)."""
    room = engine.context_length - len(engine.prompt(question)) - budget - 24 * top_k - 32
    return max(0, room)


def grounds_unified(runtime: RuntimeConfig, retriever: Retriever | None) -> bool:
    """Whether the unified model answers a qna or technical question from passages: what the confidence fit
    must have seen for the router's probabilities to hold."""
    return runtime.retrieval.unified and retriever is not None


def ground(engine: Engine, retriever: Retriever | None, runtime: RuntimeConfig, question: str, budget: int,
           found: Search | None = None) -> Grounded:
    """The question with the passages retrieved for it (`found`: its search when it already ran), leaving room
    for a `budget`-token answer; the bare question without a knowledge base. The confidence fit grounds the
    unified answers it judges this way too, so that they are the answers the router will judge."""
    if retriever is None:
        return Grounded(question)
    room = passage_room(engine, question, runtime.retrieval.top_k, budget)
    reply_in = None if runtime.english_only else reply_language(question)
    return retriever.ground(question, engine.tokenizer, room, found, reply_in)


def grounded_sampling(sampling: Sampling, question: str, grounding: Grounded) -> Sampling:
    """`sampling` with what the answer may copy exactly (the question and its passages) and, with passages,
    where it ends: before it writes its prompt's framing again (`PROMPT_FRAMING`)."""
    stop = sampling.stop + (PROMPT_FRAMING if grounding.passages else ())
    return replace(sampling, quotable=(question, *(p.text for p in grounding.passages)), stop=stop)


def quoting(prompting: dict, question: str, grounding: Grounded) -> dict:
    """The prompting of a grounded answer (`grounded_sampling`)."""
    return prompting | {"sampling": grounded_sampling(prompting["sampling"], question, grounding)}


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
    check: Check | None = None
    threshold: float | None = None
    features: dict[str, float] | None = None


class UnknownTurn(LookupError):
    """A rating names no turn this assistant answered recently."""


RECENT_TURNS = 10_000   # the turns a rating may name: a server's recent ones, not its whole life


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
                 retriever: Retriever | None = None, feedback_path: Path | None = None) -> None:
        """`log_path`, `feedback_path`: where the routing records and the ratings go (None: nowhere)."""
        self.engine = engine
        self.retriever = retriever
        self.classifier = classifier
        self.runtime = runtime
        self.router = Router(runtime.router, runtime.english_only)
        self.pool = SpecialistPool(engine, specialists, runtime.pool.memory_budget_mb)
        self.predictor = UsagePredictor(SPECIALISTS, runtime.pool)
        self.confidence = confidence
        self.preloader = Preloader(self.pool, self.predictor, runtime.pool)
        self.log = AppendLog(log_path) if log_path is not None else None
        self.feedback_log = AppendLog(feedback_path, sync=True) if feedback_path is not None else None
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._recent_lock = threading.Lock()
        self.sessions = Sessions(runtime.session_idle_minutes * 60, runtime.max_sessions, on_end=self.predictor.end)

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
        now = "grounded" if grounds_unified(cfg.runtime, retriever) else "bare"
        fitted = "grounded" if confidence is not None and confidence.metrics.get("grounded") else "bare"
        if confidence is not None and fitted != now:
            logger.warning("the router's confidence was fitted on %s unified answers, and they are now %s "
                           "(runtime.retrieval.unified): refit it with `pz2 train confidence`", fitted, now)
        logs = ws.assistant_logs
        assistant = cls(engine, classifier, cfg.runtime, specialists, confidence, logs / DECISIONS_FILE if log else None,
                        retriever, logs / FEEDBACK_FILE if log else None)
        assistant.warm_up()
        return assistant

    def warm_up(self) -> None:
        """One classification and one generated token, so the first real turn is not the slow one
        (lazy initialisation in torch and llama.cpp costs seconds on the first call)."""
        self.classifier.predict(["hello"])
        self.engine.generate("hello", self.engine.unified, max_new_tokens=1)

    def _classify(self, text: str) -> Prediction:
        return self.classifier.predict([text])[0]

    def session(self, name: str) -> Session:
        return self.sessions.get(name)

    def pending_offer(self, session: str) -> bool:
        return self.session(session).offer is not None

    def ask(self, message: str, session: str = "default", expert: bool = False,
            on_text: TextListener | None = None, options: Options = Options(), turn_id: str | None = None) -> Turn:
        """Answer one message. `expert` is the `/expert` command or the API's flag; `turn_id` names the turn
        (a fresh one when None; the API's response id carries it), which a rating names later."""
        turn_id = turn_id or uuid.uuid4().hex
        stream = AnswerStream(on_text)
        state, asked = self._read(message, session, expert, options)
        cx = complexity(asked.question, asked.prediction, self.runtime.router.complexity_weights)
        answer = self._unreadable(asked, stream) or self._answer(asked, cx, stream, options)
        if answer.decision.route != SPECIALIST:
            stream.release()    # the unified answer stands: what was held back goes out now
        notice = english_notice(asked.question) if asked.rendered and answer.gen is not None else None
        if notice:   # why the answer to a Korean question is in English
            stream.piece(answer.specialist or UNIFIED)(f"\n{notice}")
            answer.text += f"\n{notice}"
        self._remember(state, session, asked, answer.decision, turn_id)
        turn = self._turn(turn_id, message, session, asked, cx, answer, stream)
        logger.info("route=%s reason=%s category=%s confidence=%s complexity=%.2f latency_ms=%.0f specialist=%s",
                    turn.route, turn.reason, turn.category, turn.confidence, turn.complexity, turn.latency_ms,
                    turn.specialist_state)
        if self.log is not None:
            self.log.write(turn.record())
        return turn

    def _read(self, message: str, session: str, expert: bool, options: Options) -> tuple[Session, _Asked]:
        """The session's memory (or, over the stateless API, what the history implies) and what the message
        asks: its own question, or, for a bare expert request ("네, 전문가 모드로 해주세요"), the last one."""
        history = options.history
        state, before = (self.session(session), 0) if history is None else recall(history, self._classify)
        request = self.router.request(message, expert, offered=state.offer is not None)
        offered = state.offer is not None
        earlier, earlier_turn = (state.offer, state.offer_turn) if offered else (state.last, state.last_turn)
        state.offer, state.offer_turn = None, None
        if request and earlier is not None and self.router.refers_back(message):
            (question, prediction), history = earlier, history and history[:before]
            if earlier_turn is not None:   # the answer it asks again for was not good enough
                self._note(Feedback(earlier_turn, "bad", "offer_accepted" if offered else "expert_request"))
        else:
            (question, prediction), earlier_turn = (message, self._classify(message)), None
        return state, _Asked(question, prediction, request, tuple(history or ()), earlier_turn, self._readable(question))

    def _readable(self, question: str) -> str:
        """The question as the models get it: an English-only base that reads it only in part gets its English
        rendering (its English words and the glossary's English for its Korean ones), so it answers in English
        instead of echoing the question."""
        partly = self.runtime.english_only and english_coverage(question) < self.runtime.router.trusted_coverage
        return (english_rendering(question) if partly else None) or question

    def _unreadable(self, asked: _Asked, stream: AnswerStream) -> _Answer | None:
        """The router's honest reply to a question the base cannot read, without generating."""
        decision = self.router.unreadable(asked.question, asked.prediction)
        if decision is None:
            return None
        text = unreadable_reply(asked.question)
        stream.piece(UNIFIED)(text)
        return _Answer(decision, text, None)

    def _answer(self, asked: _Asked, cx: Complexity, stream: AnswerStream, options: Options) -> _Answer:
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
            # only a question a specialist could take is grounded: chit-chat has nothing to look up
            use_kb = self.runtime.retrieval.unified and options.retrieval and asked.prediction.label in SPECIALISTS
            answer.grounding = (self._ground(asked.text, options.max_new_tokens or self.engine.max_new_tokens)
                                if use_kb else Grounded(asked.text))
            held = decision is None and not options.provisional   # the router may still replace it
            answer.gen = self.engine.stream(answer.grounding.message, self.engine.unified, on_text=stream.piece(UNIFIED, held),
                                            **quoting(prompting, asked.text, answer.grounding))
            answer.text = answer.unified_text = answer.gen.text
            if decision is None or options.model is not None:
                answer.check = self._check(asked, answer.text, options)
                if self.confidence is not None:
                    answer.confidence, answer.features = self.confidence.judge(answer.gen, asked.prediction, answer.check)
            if decision is None:
                answer.threshold, _ = self.threshold(options.escalation_budget)
                answer.decision = self.router.after(asked.prediction, answer.confidence, options.offers, answer.threshold,
                                                    answer.check.grounds if answer.check else None,
                                                    english_coverage(asked.question))
        if answer.decision.route == SPECIALIST:
            self._specialist(asked.text, answer, stream, prompting, options.retrieval)
        return answer

    def _check(self, asked: _Asked, text: str, options: Options) -> Check | None:
        """The unified answer checked against the knowledge base, for a question a specialist could take."""
        if self.retriever is None or not options.retrieval or asked.prediction.label not in SPECIALISTS:
            return None
        return check(self.retriever, asked.question, text, asked.prediction.label)

    def threshold(self, budget: float | None = None) -> tuple[float, float | None]:
        """The confidence threshold in force and the escalation budget it comes from (None: the configured
        threshold): a budget, the request's or the configuration's, reads the confidence fit's curve."""
        budget = self.runtime.router.escalation_budget if budget is None else budget
        if budget is None or self.confidence is None:
            return self.runtime.router.confidence_threshold, None
        return self.confidence.threshold(budget), budget

    def _remember(self, state: Session, session: str, asked: _Asked, decision: Route, turn_id: str) -> None:
        """What the next turn may refer back to (and a rating may name), and what the predictor learns for
        preloading."""
        if decision.route == OFFER:
            state.offer, state.offer_turn = (asked.question, asked.prediction), turn_id
        state.last, state.last_turn = (asked.question, asked.prediction), turn_id
        with self._recent_lock:
            self._recent[turn_id] = None
            while len(self._recent) > RECENT_TURNS:
                self._recent.popitem(last=False)
        self.preloader.observe(session, decision.category if decision.route == SPECIALIST else asked.prediction.label)

    def _turn(self, turn_id: str, message: str, session: str, asked: _Asked, cx: Complexity, answer: _Answer,
              stream: AnswerStream) -> Turn:
        d, p = answer.decision, asked.prediction
        return Turn(
            id=turn_id, follows=asked.follows, features=answer.features, message=message, answer=answer.text or "",
            route=d.route, reason=d.reason, detail=d.detail, category=d.category, confidence=answer.confidence,
            complexity=round(cx.score, 4), complexity_parts=cx.as_dict(), latency_ms=stream.elapsed_ms(), specialist_state=answer.specialist_state,
            session=session, question=asked.question, unified_answer=answer.unified_text,
            specialist=answer.specialist, first_token_ms=stream.first_ms,
            classifier={"label": p.label, "probability": round(p.confidence, 4), "note": p.note},
            sources=answer.grounding.sources(answer.text or ""), retrieval_ms=answer.grounding.ms,
            check=answer.check, threshold=answer.threshold,
            offer=offer_text(asked.question) if d.route == OFFER else None,
            passages=answer.grounding.passages, generation=answer.gen)

    def _ground(self, question: str, budget: int, found: Search | None = None) -> Grounded:
        return ground(self.engine, self.retriever, self.runtime, question, budget, found)

    def _specialist(self, question: str, answer: _Answer, stream: AnswerStream, prompting: dict, retrieval: bool) -> None:
        """The specialist's grounded answer into `answer`; when the specialist cannot load, the unified
        answer (generated now if it was not yet) with the reason."""
        name = answer.decision.category
        # a specialist writes the detailed answer: its own budget, unless the request set one
        detailed = prompting | {"max_new_tokens": prompting["max_new_tokens"] or self.runtime.engine.specialist_max_new_tokens}
        try:
            with self.pool.use(name) as how:
                found = answer.check.search if answer.check else None
                answer.grounding = (self._ground(question, detailed["max_new_tokens"], found) if retrieval
                                    else Grounded(question))
                gen = self.engine.stream(answer.grounding.message, name, on_text=answer.grounding.prefix(stream.piece(name)),
                                         **quoting(detailed, question, answer.grounding))
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

    def decline(self, session: str) -> bool:
        """The person declined the session's expert-mode offer ("no"): the answer it followed was good
        enough. False when none was pending."""
        state = self.session(session)
        if state.offer is None:
            return False
        if state.offer_turn is not None:
            self._note(Feedback(state.offer_turn, "good", "offer_declined"))
        state.offer, state.offer_turn = None, None
        return True

    def feedback(self, turn_id: str, rating: str, how: str, comment: str | None = None) -> Feedback:
        """A person's rating of one of the recent turns (`how`: command, the terminal; api, the API and the web chat). Raises UnknownTurn
        for an id this assistant did not answer recently, ValueError for a rating other than good or bad."""
        if rating not in RATINGS:
            raise ValueError(f"rating {rating!r}: say one of {list(RATINGS)}")
        if how not in EXPLICIT:
            raise ValueError(f"how {how!r}: one of {list(EXPLICIT)}")
        with self._recent_lock:
            known = turn_id in self._recent
        if not known:
            raise UnknownTurn(f"no recent answer has the id {turn_id!r}")
        event = Feedback(turn_id, rating, how, comment)   # type: ignore[arg-type]
        self._note(event)
        return event

    def _note(self, event: Feedback) -> None:
        logger.info("feedback: turn %s %s (%s)", event.turn, event.rating, event.how)
        if self.feedback_log is not None:
            self.feedback_log.write(event.record())

    def status(self) -> dict:
        return {"engine": self.engine.name, "serving": self.engine.served.id if self.engine.served else "?",
                "unified": self.engine.unified or "merged into the served model, or none trained",
                "confidence_model": self.confidence.metrics if self.confidence else None,
                "threshold": dict(zip(("confidence_threshold", "escalation_budget"), self.threshold(), strict=True)),
                "pool": self.pool.snapshot(), "router": self.runtime.router.model_dump()}

    def close(self) -> None:
        self.pool.close()

