"""The seed's three architectures, run for real on one assistant (one engine, one process):

- unified: the unified model answers everything;
- separated: the classifier picks the category's model every time (qna -> QnA specialist,
  technical -> technical specialist, general -> unified);
- hybrid: the router as configured (`Assistant.ask`), in batch mode (a low-confidence answer escalates
  instead of offering expert mode: nobody is there to accept).

Every model answers through the assistant with the model named (`Options.model`): the prompt, the
knowledge base's passages and the check of a unified answer are the hybrid's own, so where the hybrid
escalates a row to a specialist its answer is the separated run's answer for that row.

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
from pz2.runtime.confidence import features
from pz2.runtime.prediction import Prediction
from pz2.runtime.router import SPECIALISTS
from pz2.runtime.turn import Options, Turn

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
    sources: int = 0            # passages in the answering prompt
    features: list[float] | None = field(default=None, repr=False)  # the confidence's inputs (unified answers)
    finish_reason: str = "stop"  # length: it reached its token budget


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


def ask_model(assistant: Assistant, row: EvalRow, model: str, tag: str) -> Turn:
    """`model` answers the row the way the hybrid assistant has it answer when it routes there: the same prompt,
    the same grounding in the knowledge base, the same check of a unified answer. An escalated hybrid turn and
    this turn then give the same answer (greedy decoding), so the architectures differ only in their routing."""
    return assistant.ask(row.question, session=f"eval-{tag}:{row.id}",
                         options=Options(history=row.history or None, system=row.system, model=model, offers=False))


def _unified(assistant: Assistant, row: EvalRow, prediction: Prediction) -> Answer:
    turn = ask_model(assistant, row, UNIFIED, "unified")
    # the confidence the router would see and what it was computed from: the curves sweep thresholds over these
    vector = None
    if turn.generation is not None:
        vector = features(turn.generation, prediction, assistant.engine.max_new_tokens, turn.check).tolist()
    return Answer(turn.answer, UNIFIED, turn.first_token_ms, turn.latency_ms, False, "unified model", turn.confidence,
                  len(turn.sources), vector, turn.finish_reason)


def _separated(assistant: Assistant, row: EvalRow, _: Prediction) -> Answer:
    label = assistant.classifier.predict([row.question])[0].label
    model = label if label in SPECIALISTS else UNIFIED
    turn = ask_model(assistant, row, model, "separated")
    return Answer(turn.answer, turn.specialist or UNIFIED, turn.first_token_ms, turn.latency_ms,
                  turn.specialist is not None, f"category {label}", None, len(turn.sources),
                  finish_reason=turn.finish_reason)


def _hybrid(assistant: Assistant, row: EvalRow, _: Prediction) -> Answer:
    turn = assistant.ask(row.question, session=f"eval:{row.id}",
                         options=Options(history=row.history or None, system=row.system, offers=False))
    return Answer(turn.answer, turn.specialist or UNIFIED, turn.first_token_ms, turn.latency_ms,
                  turn.specialist is not None, turn.reason, turn.confidence, len(turn.sources),
                  finish_reason=turn.finish_reason)


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
