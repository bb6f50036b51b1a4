"""The seed's three architectures, run for real on one assistant (one engine, one process):

- unified: the unified model answers everything (no classifier in the way);
- separated: the classifier picks the category's model every time (qna -> QnA specialist,
  technical -> technical specialist, general -> unified);
- hybrid: the router as configured (`Assistant.ask`).

Each run times every answer (first text piece and whole answer, wall clock), counts specialist
loads, samples the process's resident memory after every answer and its CPU time. The runs go
in the order unified -> hybrid -> separated, with the specialists unloaded between them: resident
memory rarely shrinks after an unload, so each later run needs at least what the one before used.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pz2.evaluation.eval_set import EvalRow
from pz2.runtime.assistant import Assistant
from pz2.runtime.engine import Generation
from pz2.runtime.prediction import Prediction
from pz2.runtime.router import SPECIALISTS

ARCHITECTURES: tuple[str, ...] = ("unified", "separated", "hybrid")
RUN_ORDER: tuple[str, ...] = ("unified", "hybrid", "separated")
UNIFIED = "unified"


@dataclass(frozen=True)
class Answer:
    text: str
    model: str                  # who answered: unified | qna | technical | base
    first_token_ms: float | None
    total_ms: float
    escalated: bool = False
    reason: str | None = None   # the router's reason (hybrid), or the rule that chose the model
    confidence: float | None = None


@dataclass
class ArchitectureRun:
    name: str
    answers: list[Answer] = field(default_factory=list)
    specialist_loads: int = 0
    peak_rss_mb: float = 0.0
    specialists_mb: float = 0.0     # the most specialist weight the engine held at once
    cpu_s: float = 0.0
    wall_s: float = 0.0


def rss_mb() -> float:
    """Resident memory of this process now (not the lifetime peak: each run gets its own)."""
    import psutil

    return psutil.Process(os.getpid()).memory_info().rss / 2**20


def timed_stream(assistant: Assistant, question: str, adapter: str | None,
                 start: float | None = None) -> tuple[Generation, float | None, float]:
    """(generation, first text piece ms, whole answer ms) measured from `start` (default: now)."""
    start = time.perf_counter() if start is None else start
    first: list[float] = []

    def on_text(_: str) -> None:
        if not first:
            first.append(time.perf_counter() - start)

    gen = assistant.engine.stream(question, adapter, on_text=on_text)
    return gen, (first[0] * 1000 if first else None), (time.perf_counter() - start) * 1000


def _unified(assistant: Assistant, row: EvalRow, prediction: Prediction) -> Answer:
    gen, first, total = timed_stream(assistant, row.question, assistant.engine.unified)
    # the confidence the router would see: the curve sweeps its threshold over these
    confidence = assistant.confidence(gen, prediction) if assistant.confidence else None
    return Answer(gen.text, UNIFIED, first, total, False, "unified model", confidence)


def _separated(assistant: Assistant, row: EvalRow, _: Prediction) -> Answer:
    start = time.perf_counter()
    label = assistant.classifier.predict([row.question])[0].label   # timed: this architecture needs it
    if label not in SPECIALISTS:
        gen, first, total = timed_stream(assistant, row.question, assistant.engine.unified, start)
        return Answer(gen.text, UNIFIED, first, total, False, f"category {label}")
    with assistant.pool.use(label):
        gen, first, total = timed_stream(assistant, row.question, label, start)
    return Answer(gen.text, label, first, total, True, f"category {label}")


def _hybrid(assistant: Assistant, row: EvalRow, _: Prediction) -> Answer:
    turn = assistant.ask(row.question, session=f"eval:{row.id}")
    return Answer(turn.answer, turn.specialist or UNIFIED, turn.first_token_ms, turn.latency_ms,
                  turn.specialist is not None, turn.reason, turn.confidence)


RUNNERS: dict[str, Callable[[Assistant, EvalRow, Prediction], Answer]] = {
    "unified": _unified, "separated": _separated, "hybrid": _hybrid,
}


def unload_specialists(assistant: Assistant) -> None:
    assistant.pool.drain()
    for name in SPECIALISTS:
        assistant.pool.unload(name)


def run_architecture(name: str, assistant: Assistant, rows: list[EvalRow], predictions: list[Prediction],
                     advance: Callable[[], None] = lambda: None) -> ArchitectureRun:
    """Answer every row the way architecture `name` would, from a pool with no specialist loaded."""
    unload_specialists(assistant)
    run = ArchitectureRun(name)
    loads = assistant.pool.loads
    cpu, wall = time.process_time(), time.perf_counter()
    for row, prediction in zip(rows, predictions, strict=True):
        run.answers.append(RUNNERS[name](assistant, row, prediction))
        run.peak_rss_mb = max(run.peak_rss_mb, rss_mb())
        held = sum(size for model, size in assistant.engine.sizes.items() if model != assistant.engine.unified)
        run.specialists_mb = max(run.specialists_mb, held / 2**20)
        advance()
    assistant.pool.drain()
    run.cpu_s, run.wall_s = time.process_time() - cpu, time.perf_counter() - wall
    run.specialist_loads = assistant.pool.loads - loads
    return run
