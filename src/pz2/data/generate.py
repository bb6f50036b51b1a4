"""Generate the seed's nine dataset files from the hand-written topic banks.

Every topic (a concept, a task, a problem, a chat intent) goes to exactly one split, so
validation and test measure generalisation to unseen topics, not memory of a phrasing.
Questions are deduplicated globally after normalisation, which also rules out leaks.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pz2.config import DataConfig
from pz2.data import phrasing
from pz2.data.banks import Concept, Intent, Problem, Task
from pz2.data.banks.general import INTENTS
from pz2.data.banks.qna import CONCEPTS
from pz2.data.banks.technical import PROBLEMS, TASKS
from pz2.data.schema import LABEL_IDS, LABELS, SPLITS, normalize, unified_input
from pz2.fileio import atomic_write_json, atomic_write_jsonl

logger = logging.getLogger(__name__)

GENERATED = "generated"


@dataclass(frozen=True)
class Example:
    """One question with its two answers: short (unified model) and detailed (specialist)."""

    topic: str       # the unit of splitting
    category: str    # "qna" | "technical" | "general"
    question: str
    short: str
    detailed: str
    source: str = GENERATED


# The seed's own example sentences: generated verbatim, kept in training, labelled as the seed says.
SEED_EXAMPLES: tuple[tuple[str, str], ...] = (
    ("What is the difference between lists and tuples in Python?", "qna"),
    ("What is a Python dictionary?", "qna"),
    ("How to draw a line in CAD software?", "technical"),
    ("How to start 3D modeling in AutoCAD?", "technical"),
    ("SketchUp expert mode advanced modeling", "technical"),
    ("Hello, how are you today?", "general"),
    ("I feel sad today", "general"),
)
_SEED_KEYS = {normalize(q) for q, _ in SEED_EXAMPLES}


def _numbered(items: tuple[str, ...]) -> str:
    return "\n".join(f"{i}. {item}" for i, item in enumerate(items, start=1))


def _concept_stream(c: Concept, rng: random.Random) -> Iterator[str]:
    templates = phrasing.CONCEPT_TEMPLATES
    yield from c.questions
    yield from (t.format(s=c.subject) for t in templates[:2])
    while True:
        text = rng.choice(templates).format(s=c.subject)
        yield phrasing.decorate(text, rng, phrasing.QUESTION_PREFIXES, phrasing.QUESTION_SUFFIXES)


def _task_stream(t: Task, rng: random.Random) -> Iterator[str]:
    prep = "on" if t.tool in phrasing.ON_TOOLS else "in"
    templates = phrasing.TASK_TEMPLATES
    yield from t.questions
    yield from (tpl.format(t=t.task, p=prep, tool=t.tool) for tpl in templates[:2])
    while True:
        text = rng.choice(templates).format(t=t.task, p=prep, tool=t.tool)
        yield phrasing.decorate(text, rng, phrasing.QUESTION_PREFIXES, phrasing.QUESTION_SUFFIXES)


def _is_sentence(p: Problem) -> bool:
    """"my Wi-Fi keeps disconnecting" reads as a sentence; "KeyError when ..." as a quoted message."""
    return p.symptom.split()[0] in {"my", "the", "a", "an"} or p.symptom.startswith(p.tool)


def _problem_stream(p: Problem, rng: random.Random) -> Iterator[str]:
    templates = phrasing.SYMPTOM_TEMPLATES if _is_sentence(p) else phrasing.ERROR_TEMPLATES
    fill = {"m": p.symptom, "M": phrasing.capitalize(p.symptom), "tool": p.tool}
    yield from (t.format(**fill) for t in templates[:2])
    while True:
        text = rng.choice(templates).format(**fill)
        yield phrasing.decorate(text, rng, phrasing.QUESTION_PREFIXES, phrasing.QUESTION_SUFFIXES)


def _intent_stream(i: Intent, rng: random.Random) -> Iterator[str]:
    yield from i.utterances
    while True:
        yield phrasing.decorate(rng.choice(i.utterances), rng, phrasing.CHAT_PREFIXES, phrasing.CHAT_SUFFIXES)


@dataclass
class _Topic:
    key: str
    category: str
    stream: Iterator[str]                               # its own verbatim questions come first
    reply: Callable[[random.Random], tuple[str, str]]  # -> (short, detailed)
    verbatim: tuple[str, ...] = ()

    @property
    def pinned(self) -> bool:
        """Topics holding a seed example stay in training and are drawn first, whatever the size."""
        return any(normalize(q) in _SEED_KEYS for q in self.verbatim)


def _topics(rng: random.Random) -> list[_Topic]:
    topics: list[_Topic] = []
    for c in CONCEPTS:
        detailed = f"{c.answer}\n\nIn more detail:\n{_numbered(c.points)}"
        topics.append(_Topic(f"qna:{c.subject}", "qna", _concept_stream(c, rng),
                             lambda _r, a=c.answer, d=detailed: (a, d), c.questions))
    for t in TASKS:
        prep = "on" if t.tool in phrasing.ON_TOOLS else "in"
        detailed = f"Here's a detailed guide on how to {t.task} {prep} {t.tool}:\n{_numbered(t.steps)}"
        detailed += f"\n\nTip: {t.tip}" if t.tip else ""
        topics.append(_Topic(f"technical:{t.tool}:{t.task}", "technical", _task_stream(t, rng),
                             lambda _r, a=t.answer, d=detailed: (a, d), t.questions))
    for p in PROBLEMS:
        detailed = f"{p.answer}\n\nStep by step:\n{_numbered(p.steps)}"
        detailed += f"\n\nTip: {p.tip}" if p.tip else ""
        topics.append(_Topic(f"technical:{p.tool}:{p.symptom}", "technical", _problem_stream(p, rng),
                             lambda _r, a=p.answer, d=detailed: (a, d)))
    for i in INTENTS:
        def reply(r: random.Random, replies: tuple[str, ...] = i.replies) -> tuple[str, str]:
            text = r.choice(replies)
            return text, text  # chat needs no specialist: both answers are the same warm reply
        topics.append(_Topic(f"general:{i.name}", "general", _intent_stream(i, rng), reply, i.utterances[:1]))
    return topics


def _assign_splits(topics: list[_Topic], cfg: DataConfig, pinned: set[str], rng: random.Random) -> dict[str, str]:
    """Hold out whole topics, the same share of each category, never a pinned one."""
    split_of: dict[str, str] = {}
    for category in LABELS:
        keys = [t.key for t in topics if t.category == category and t.key not in pinned]
        rng.shuffle(keys)
        n_val = max(1, round(cfg.validation_fraction * len(keys)))
        n_test = max(1, round(cfg.test_fraction * len(keys)))
        for i, key in enumerate(keys):
            split_of[key] = "validation" if i < n_val else "test" if i < n_val + n_test else "train"
    split_of.update({key: "train" for key in pinned})
    return split_of


def _draw(topics: list[_Topic], n: int, seen: set[str], rng: random.Random) -> list[Example]:
    """Round-robin over a category's topics so each contributes about n / len(topics) questions."""
    out: list[Example] = []
    live = list(topics)
    misses = Counter[str]()
    while len(out) < n and live:
        for topic in list(live):
            if len(out) >= n:
                break
            question = next(topic.stream)
            key = normalize(question)
            if not key or key in seen:
                misses[topic.key] += 1
                if misses[topic.key] > 200:  # this topic has no new phrasings left
                    live.remove(topic)
                continue
            seen.add(key)
            short, detailed = topic.reply(rng)
            out.append(Example(topic.key, topic.category, question, short, detailed))
    if len(out) < n:
        logger.warning("only %d distinct questions available for %s (asked for %d)", len(out), topics[0].category, n)
    return out


def _plan(cfg: DataConfig) -> tuple[random.Random, list[_Topic], set[str], dict[str, str]]:
    """The topics and their splits, and the generator in the state the drawing continues from."""
    rng = random.Random(cfg.seed)
    topics = _topics(rng)
    pinned = {t.key for t in topics if t.pinned}
    return rng, topics, pinned, _assign_splits(topics, cfg, pinned, rng)


def topic_splits(cfg: DataConfig) -> dict[str, str]:
    """Topic key ("qna:<subject>", "technical:<tool>:<task>") -> the split `generate` puts it in."""
    return _plan(cfg)[3]


def topic_documents() -> dict[str, tuple[str, str]]:
    """Topic key -> (title, text) of each qna and technical topic: its specialist answer as a
    document, without any of the questions that ask for it."""
    out: dict[str, tuple[str, str]] = {}
    for t in _topics(random.Random(0)):
        if t.category != "general":
            parts = t.key.split(":", 2)
            title = parts[1] if t.category == "qna" else f"{parts[1]}: {parts[2]}"
            out[t.key] = (title, t.reply(random.Random(0))[1])
    return out


@dataclass
class GenerationReport:
    out_dir: Path
    rows: dict[str, int] = field(default_factory=dict)        # file name -> rows
    topics: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> category -> topics
    real_rows: int = 0
    seconds: float = 0.0


def generate(cfg: DataConfig, system_prompt: str, out_dir: Path) -> GenerationReport:
    """Write the seed's nine files (and the held-out dialogue splits) to `out_dir`; deterministic for a given `cfg`."""
    start = time.perf_counter()
    rng, topics, pinned, split_of = _plan(cfg)
    seen: set[str] = set()
    examples: list[Example] = []
    for category in LABELS:
        # seed topics first, then held-out topics, so even a tiny dataset has every split
        chosen = sorted((t for t in topics if t.category == category),
                        key=lambda t: (t.key not in pinned, split_of[t.key] == "train"))
        examples += _draw(chosen, cfg.per_category, seen, rng)
    generated = {(normalize(e.question), e.category) for e in examples}
    missing = [q for q, c in SEED_EXAMPLES if (normalize(q), c) not in generated]
    assert not missing, f"seed examples not generated: {missing}"
    splits: dict[str, list[Example]] = {s: [] for s in SPLITS}
    for e in examples:
        splits[split_of[e.topic]].append(e)

    report = GenerationReport(out_dir)
    if cfg.include_real:
        from pz2.data.real import real_examples

        for split, rows in real_examples(seen).items():
            splits[split] += rows
            report.real_rows += len(rows)

    for split, rows in splits.items():
        rng.shuffle(rows)
        report.topics[split] = dict(Counter(t.split(":")[0] for t in {e.topic for e in rows}))
        _write(out_dir, f"classification_{split}.jsonl", report,
               ({"text": e.question, "label": LABEL_IDS[e.category], "source": e.source} for e in rows))
        _write(out_dir, f"unified_{split}.jsonl", report,
               ({"input_text": unified_input(system_prompt, e.question), "target_text": e.short,
                 "category": e.category, "source": e.source} for e in rows))
    # Beyond the seed's nine: held-out dialogue splits, so a specialist is validated and tested
    # against detailed reference answers on topics it never saw.
    for split, rows in splits.items():
        for category in LABELS:
            _write(out_dir, f"dialogue_{category}_{split}.jsonl", report,
                   ({"input_text": e.question, "target_text": e.detailed, "source": e.source}
                    for e in rows if e.category == category))
    report.seconds = time.perf_counter() - start
    atomic_write_json(out_dir / "generation.json", {
        "seed": cfg.seed, "per_category": cfg.per_category, "include_real": cfg.include_real,
        "rows": report.rows, "topics": report.topics, "real_rows": report.real_rows,
    })
    logger.info("generated %d files in %.2fs into %s", len(report.rows), report.seconds, out_dir)
    return report


def _write(out_dir: Path, name: str, report: GenerationReport, rows: Iterator[dict]) -> None:
    report.rows[name] = atomic_write_jsonl(out_dir / name, rows)
