"""What one turn is: the options a request sets, the answer as it streams out, and the routing record
it leaves (`Turn.record()`: {route, reason, category, confidence, complexity, latency_ms,
specialist_state, sources, ...}, as logged, printed by batch mode and returned by the API)."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields

from pz2.knowledge.grounding import Passage
from pz2.runtime.engine import GREEDY, Generation, Sampling
from pz2.runtime.verification import Check


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
    escalation_budget: float | None = None  # share of escalatable turns to escalate; None: the configured policy


_NOT_RECORDED = ("passages", "generation", "check")   # text and objects; the check goes in as its record

# (source, piece): source is "unified" or the specialist's name, so a screen can label the stream
TextListener = Callable[[str, str], None]


@dataclass
class Turn:
    id: str                            # what a rating names (the API's response id is chatcmpl-<id>)
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
    threshold: float | None = None     # the confidence threshold in force for this turn
    follows: str | None = None         # the turn whose question this one answers again (an accepted offer)
    features: dict[str, float] | None = None   # what the confidence was computed from, for a refit on ratings
    offer: str | None = None           # the expert-mode offer that follows the answer, in its language
    passages: list[Passage] = field(default_factory=list, repr=False)  # their text, for `/sources`
    generation: Generation | None = field(default=None, repr=False)   # the answer's tokens, usage, finish reason
    check: Check | None = field(default=None, repr=False)   # the unified answer checked against the knowledge base

    def record(self) -> dict:
        """The routing record, as logged and as returned by batch mode and the API."""
        record = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _NOT_RECORDED}
        record["check"] = self.check.record() if self.check else None
        record["dropped_messages"] = self.generation.dropped_messages if self.generation else 0
        record["finish_reason"] = self.finish_reason
        return copy.deepcopy(record)

    @property
    def finish_reason(self) -> str:
        """stop | length (the answer reached its token budget) | cancelled; stop for a reply not generated."""
        return self.generation.finish_reason if self.generation else "stop"

    @property
    def shortened(self) -> bool:
        """The answer reached its token budget: what it says was cut back to its last complete sentence."""
        return self.finish_reason == "length"

    def summary(self) -> str:
        """The routing record in one line, for people."""
        conf = "n/a" if self.confidence is None else f"{self.confidence:.2f}"
        grounded = f" · {len(self.sources)} sources ({self.retrieval_ms:.0f} ms)" if self.sources else ""
        return (f"route {self.route} · {self.reason} ({self.detail}) · category {self.category} · confidence {conf} · "
                f"complexity {self.complexity:.2f} · {self.latency_ms:.0f} ms · specialist {self.specialist_state}"
                f"{grounded}")


class AnswerStream:
    """A turn's answer pieces on their way to the listener: timed from the turn's start, and held back
    while the router may still replace the unified answer with a specialist's (the API's
    `provisional: false`), then released or dropped with the decision."""

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
