"""Fit the confidence model: answer validation questions with the unified model, check, score, fit.

The questions are of two kinds, so the probabilities hold where users ask: generated validation rows
(`unified_validation.jsonl`) and human-written ones (`human_questions`: chatterbot-corpus's qna pairs
outside its test split, which stays for `pz2 eval compare`, and the examples of the knowledge base's
training cheat sheets). Each answer is checked against the knowledge base the way the assistant checks
it (runtime/verification.py) and labelled good when it is right (evaluation/answer_quality.is_good); the
features are the ones the assistant computes live, from the engine and classifier the caller hands in
(the ones the router will use). With `feedback`, the unified answers people rated join them
(runtime/feedback.py), weighted, with the features their decision records kept, and get their own
out-of-fold calibration figures. Two models are fitted on the same answers: the one the router uses, and
one on the generation's signals alone, kept so that `pz2 eval compare` can show what the check adds. It
lives beside the features it fits: it needs the runtime's engine, and nothing of the runtime needs it.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.progress import Progress

from pz2.config import ConfidenceFitConfig, ModelConfig, RuntimeConfig
from pz2.data.jsonl import read_jsonl
from pz2.data.loading import reference_pairs
from pz2.data.real import chatterbot_rows, split_of
from pz2.data.schema import normalize
from pz2.evaluation.answer_quality import is_good, score_answers
from pz2.evaluation.plots import reliability_diagram
from pz2.fileio import atomic_write_jsonl
from pz2.knowledge.grounding import Grounded
from pz2.knowledge.index import MANIFEST, KnowledgeIndex
from pz2.knowledge.raft import sheet_examples
from pz2.knowledge.retrieval import Retriever
from pz2.models.sentence import SentenceEncoder
from pz2.runtime.append_log import read_log
from pz2.runtime.classifier import ConversationClassifier
from pz2.runtime.confidence import (
    CONFIDENCE_FILE,
    FEATURES,
    GENERATION_FEATURES,
    GENERATION_ONLY_FILE,
    ConfidenceModel,
    binary_metrics,
    features,
)
from pz2.runtime.assistant import ground, grounded_sampling, grounds_unified
from pz2.runtime.engine import GREEDY, Engine, Generation
from pz2.runtime.feedback import DECISIONS_FILE, FEEDBACK_FILE, Feedback, labelled_answers
from pz2.runtime.router import SPECIALISTS
from pz2.runtime.verification import check, search_without
from pz2.workspace import Workspace

logger = logging.getLogger(__name__)
GENERATED, HUMAN, FEEDBACK = "generated", "human", "feedback"
FIT_QUESTIONS = Path(__file__).parents[1] / "data" / "challenge" / "confidence_questions.jsonl"


@dataclass(frozen=True)
class Question:
    origin: str          # generated | human
    source: str
    text: str
    reference: str


def human_questions(limit: int, seed: int, index: KnowledgeIndex | None) -> list[Question]:
    """Up to `limit` human-written questions with their answers, half qna and half technical where there are
    enough. QnA: chatterbot-corpus pairs of its training and validation splits, never a question its test split
    also asks. Technical: the examples of the knowledge base's training cheat sheets ("# To extract a .gz
    archive:" over its commands -> "How do I extract a .gz archive?", the commands as the answer); chatterbot's
    tech_support file asks only 10 distinct questions, all of them also in its test split. First of all, the
    pz2 authors' short-answer questions written for this fit (`FIT_QUESTIONS`: everyday facts and one-command
    answers, most of which no passage states — the questions users ask that the corpora lack)."""
    rows = chatterbot_rows()
    held_out = {normalize(r.text) for r in rows if split_of(r.source) == "test"}
    by_category: dict[str, list[Question]] = {c: [] for c in SPECIALISTS}
    for r in rows:
        if r.category == "qna" and r.reply and split_of(r.source) != "test" and normalize(r.text) not in held_out:
            by_category["qna"].append(Question(HUMAN, r.source, r.text, r.reply))
    for question, answer, chunk in sheet_examples(index) if index is not None else []:
        commands = answer.split("\n", 1)[1]
        by_category["technical"].append(Question(HUMAN, chunk.path, question, commands))
    rng = random.Random(seed)
    written = [Question(HUMAN, r["source"], r["input_text"], r["target_text"]) for r in read_jsonl(FIT_QUESTIONS)]
    out: list[Question] = rng.sample(written, min(limit, len(written)))
    # the smaller pool first: what it cannot fill of its half goes to the other
    for i, category in enumerate(sorted(SPECIALISTS, key=lambda c: len(by_category[c]))):
        pool = by_category[category]
        share = (limit - len(out)) // (len(SPECIALISTS) - i)
        out += rng.sample(pool, min(share, len(pool)))
    return out


def generated_questions(path: Path, system_prompt: str, limit: int | None, seed: int) -> list[Question]:
    pairs = reference_pairs(path, system_prompt, None)
    if limit is not None and limit < len(pairs):
        pairs = random.Random(seed).sample(pairs, limit)
    return [Question(GENERATED, path.name, user, reference) for _, user, reference, _ in pairs]


def _mentions(q: Question) -> Callable[[str], bool]:
    """Whether a passage states the question or its reference answer: what a question the knowledge base does
    not cover would find nowhere."""
    needles = [n for n in (normalize(q.text), normalize(q.reference)) if n]
    return lambda text: any(n in normalize(text) for n in needles)


def collect(engine: Engine, classifier: ConversationClassifier, retriever: Retriever | None, encoder: SentenceEncoder,
            questions: list[Question], good: dict, runtime: RuntimeConfig,
            show_progress: bool = True) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """(features in FEATURES order, good labels, rows for the log) of the unified answers to `questions`, each
    checked against the knowledge base as the assistant would (only when the classifier says qna/technical),
    and, with `runtime.retrieval.unified`, written from the passages the assistant would give the unified
    model: the fit judges the answers the router will judge.

    Every question of the fit has its answer somewhere in the knowledge base (a bank topic, a corpus pair, a
    cheat sheet), while many a user's question has none. So a checked answer is also checked a second time
    with the passages that state its question or answer hidden (`view` "uncovered"): the check a question the
    knowledge base does not cover would get; a grounded answer is written again from what is left, when that
    differs. Both views of a question share `answer_id` (one fold)."""
    max_new_tokens = runtime.engine.max_new_tokens
    grounded = grounds_unified(runtime, retriever)
    predictions = classifier.predict([q.text for q in questions])
    xs, rows = [], []
    with Progress(disable=not show_progress, transient=True) as bar:
        task = bar.add_task("answering validation questions", total=len(questions))
        for i, (q, prediction) in enumerate(zip(questions, predictions, strict=True)):
            checked = retriever is not None and prediction.label in SPECIALISTS
            views = {"covered": None, "uncovered": _mentions(q)} if checked else {"covered": None}
            answers: dict[str, Generation] = {}   # by prompt: a view given the same passages, or none, has the same answer
            for view, hide in views.items():
                grounding = (ground(engine, retriever, runtime, q.text, max_new_tokens, search_without(retriever, q.text, hide))
                             if grounded and checked else Grounded(q.text))
                if grounding.message not in answers:   # prompted as the assistant prompts it, passages or none
                    answers[grounding.message] = engine.stream(grounding.message, engine.unified, max_new_tokens,
                                                               sampling=grounded_sampling(GREEDY, q.text, grounding))
                gen = answers[grounding.message]
                verified = check(retriever, q.text, gen.text, prediction.label, hide=hide) if checked else None
                xs.append(features(gen, prediction, max_new_tokens, verified))
                rows.append({"answer_id": i, "view": view, "origin": q.origin, "source": q.source, "input_text": q.text,
                             "answer": gen.text, "passages": len(grounding.passages), "reference": q.reference,
                             "category": prediction.label, "check": verified.record() if verified else None})
            bar.advance(task)
    # each answer scored once, whatever its views
    first = {(r["answer_id"], r["answer"]): r for r in reversed(rows)}
    scored = dict(zip(first, score_answers(encoder, [r["answer"] for r in first.values()],
                                           [[r["reference"]] for r in first.values()], good["short_answer_words"]),
                      strict=True))
    ys = []
    for row in rows:
        score = scored[row["answer_id"], row["answer"]]
        ys.append(float(is_good(score, good["semscore"])))
        row |= {"semscore": round(score["semscore"], 4), "factual": score["factual"], "good": bool(ys[-1])}
    return np.array(xs), np.array(ys), rows


def feedback_rows(ws: Workspace, cfg: ConfidenceFitConfig, first_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
    """(features in FEATURES order, labels, weights, rows for the log) of the unified answers people rated,
    from the assistant's logs; answers get ids from `first_id` on. A record made before a feature existed
    cannot be read with it: skipped, and counted in a warning."""
    decisions = read_log(ws.assistant_logs / DECISIONS_FILE)
    events = [e for r in read_log(ws.assistant_logs / FEEDBACK_FILE) if (e := Feedback.from_record(r)) is not None]
    xs, ys, weights, rows = [], [], [], []
    stale = 0
    for record, verdict in labelled_answers(decisions, events):
        values = record["features"]
        if not set(FEATURES) <= values.keys():
            stale += 1
            continue
        xs.append([float(values[name]) for name in FEATURES])
        ys.append(float(verdict.rating == "good"))
        weights.append(cfg.implicit_weight if verdict.implicit else cfg.feedback_weight)
        rows.append({"answer_id": first_id + len(rows), "view": "covered", "origin": FEEDBACK, "source": verdict.how,
                     "turn": record["id"], "input_text": record["question"], "answer": record["unified_answer"],
                     "reference": None, "category": record.get("classifier", {}).get("label", record["category"]),
                     "check": record.get("check"), "good": bool(ys[-1]), "weight": weights[-1]})
    if stale:
        logger.warning("%d rated answers skipped: their decision records lack features the confidence reads now", stale)
    logger.info("%d rated answers from %s", len(rows), ws.assistant_logs / FEEDBACK_FILE)
    return np.array(xs).reshape(-1, len(FEATURES)), np.array(ys), np.array(weights), rows


def fit_confidence(ws: Workspace, engine: Engine, classifier: ConversationClassifier, model_cfg: ModelConfig,
                   cfg: ConfidenceFitConfig, short_answer_words: int,
                   show_progress: bool = True) -> tuple[ConfidenceModel, Path]:
    """Fit on up to `cfg.limit` generated and `cfg.human_limit` human-written questions, answered by `engine`'s
    unified model; writes confidence.json (and the generation-only model) beside the unified adapter."""
    encoder = SentenceEncoder.load(model_cfg)
    retriever = None
    if (ws.knowledge / MANIFEST).is_file():
        retriever = Retriever.load(ws.knowledge, model_cfg, SentenceEncoder.for_knowledge(model_cfg, encoder))
    else:
        logger.warning("%s: no knowledge base; the confidence is fitted without its check (`pz2 kb build`)", ws.knowledge)
    questions = generated_questions(ws.datasets / "unified_validation.jsonl", model_cfg.system_prompt, cfg.limit,
                                    cfg.seed) + human_questions(cfg.human_limit, cfg.seed, retriever and retriever.index)
    good = {"short_answer_words": short_answer_words, "semscore": cfg.good_semscore}
    max_new = model_cfg.runtime.engine.max_new_tokens
    start = time.perf_counter()
    x, y, rows = collect(engine, classifier, retriever, encoder, questions, good, model_cfg.runtime, show_progress)
    weights = np.ones(len(y))
    if cfg.feedback:
        fx, fy, fw, frows = feedback_rows(ws, cfg, len(questions))
        x, y, weights, rows = np.vstack([x, fx]), np.concatenate([y, fy]), np.concatenate([weights, fw]), rows + frows
    eligible = np.array([r["category"] in SPECIALISTS for r in rows])
    origin = np.array([r["origin"] for r in rows])
    groups = np.array([r["answer_id"] for r in rows])
    out = ws.unified_model / CONFIDENCE_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    fitted = {}
    # the generation-only model sees one row per answer: its views would be copies
    one_view = np.array([r["view"] == "covered" for r in rows])
    for name, columns, rows_used in ((CONFIDENCE_FILE, FEATURES, np.ones(len(rows), dtype=bool)),
                                     (GENERATION_ONLY_FILE, GENERATION_FEATURES, one_view)):
        xs, ys, kinds = x[rows_used], y[rows_used], origin[rows_used]
        model, oof = ConfidenceModel.fit(xs, ys, columns, max_new, good, eligible[rows_used], cfg.l2, cfg.folds,
                                         cfg.seed, groups[rows_used], weights[rows_used])
        model.metrics |= {kind: binary_metrics(oof[kinds == kind], ys[kinds == kind])
                          for kind in (GENERATED, HUMAN, FEEDBACK) if (kinds == kind).any()}
        model.metrics |= {"engine": engine.name, "served": engine.served.id if engine.served else "?",
                          "adapter": engine.unified, "checked": retriever is not None, "answers": int(one_view.sum()),
                          "grounded": grounds_unified(model_cfg.runtime, retriever),
                          "seconds": round(time.perf_counter() - start, 1)}
        model.save(out.with_name(name))
        fitted[name] = (model, oof)
    model, oof = fitted[CONFIDENCE_FILE]
    atomic_write_jsonl(out.with_name("confidence_rows.jsonl"),
                       [r | {"p_good": round(float(p), 4)} for r, p in zip(rows, oof, strict=True)])
    reliability_diagram({f"P(good), out of fold, {kind}": (np.stack([1 - oof[origin == kind], oof[origin == kind]], axis=1),
                                                           y[origin == kind].astype(int))
                         for kind in (GENERATED, HUMAN, FEEDBACK) if (origin == kind).any()},
                        out.with_name("confidence_reliability.png"), "Confidence of the unified answer")
    logger.info("confidence fitted on %d answers (%.0f%% good): out-of-fold ECE %.3f, AUC %s", len(y), 100 * y.mean(),
                model.metrics["ece"], model.metrics["auc"])
    return model, out
