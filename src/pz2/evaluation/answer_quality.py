"""Quality of answers against references: every metric per answer, then means per category.

A row may carry several correct references (a generated question has a short answer for the
unified model and a detailed one for its specialist); each metric takes the best reference, as
multi-reference BLEU and ROUGE do. SemScore (Aynetdinov & Akbik 2024) is the cosine of the
MiniLM sentence embeddings of answer and reference. Factual accuracy applies to short-answer
rows only (a reference of at most `short_answer_words` words, such as trivia): a long reference
cannot be "contained" in an answer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from pz2.evaluation.text_metrics import bleu, chrf, contains_answer, repeats_ngram, rouge_l, words
from pz2.models.sentence import SentenceEncoder

# Metrics that give every answer a number in 0..1: any of them can be the routing quality.
QUALITY_METRICS: tuple[str, ...] = ("semscore", "rouge_l", "chrf", "bleu")
ALL = "all"


def is_short_answer(reference: str, short_answer_words: int) -> bool:
    return 0 < words(reference) <= short_answer_words


def semscores(encoder: SentenceEncoder, answers: Sequence[str], references: Sequence[Sequence[str]]) -> list[float]:
    """Best cosine between each answer's embedding and its references' embeddings."""
    flat = [r for refs in references for r in refs]
    vectors = encoder.embed(list(answers) + flat)
    a, r = vectors[: len(answers)], vectors[len(answers):]
    out, offset = [], 0
    for i, refs in enumerate(references):
        out.append(float(np.clip((r[offset : offset + len(refs)] @ a[i]).max(), -1.0, 1.0)))
        offset += len(refs)
    return out


def score_answers(encoder: SentenceEncoder, answers: Sequence[str], references: Sequence[Sequence[str]],
                  short_answer_words: int) -> list[dict[str, float | bool | int | None]]:
    """One dict of metrics per answer; `factual` is None where the row has no short answer."""
    sem = semscores(encoder, answers, references)
    out = []
    for answer, refs, s in zip(answers, references, sem, strict=True):
        short = [r for r in refs if is_short_answer(r, short_answer_words)]
        out.append({
            "semscore": s,
            "rouge_l": max(rouge_l(answer, r) for r in refs),
            "chrf": max(chrf(answer, r) for r in refs),
            "bleu": max(bleu(answer, r) for r in refs),
            "factual": any(contains_answer(answer, r) for r in short) if short else None,
            "words": words(answer),
            "repeat_4gram": repeats_ngram(answer),
        })
    return out


def is_good(score: dict, good_semscore: float) -> bool:
    """An answer is good when it is right: containing the fact, for a short-answer row; else close enough in
    meaning to the reference (SemScore). What the router's confidence predicts."""
    return bool(score["factual"]) if score["factual"] is not None else score["semscore"] >= good_semscore


def summarize(scores: Sequence[dict]) -> dict[str, float | int | None]:
    """Means of the metrics over some answers; factual accuracy over the rows it applies to."""
    factual = [s["factual"] for s in scores if s["factual"] is not None]
    out: dict[str, float | int | None] = {"rows": len(scores)}
    for key in (*QUALITY_METRICS, "words", "repeat_4gram"):
        out[key] = float(np.mean([float(s[key]) for s in scores])) if scores else None
    out["factual_accuracy"] = float(np.mean(factual)) if factual else None
    out["factual_rows"] = len(factual)
    return out


def by_category(scores: Sequence[dict], categories: Sequence[str]) -> dict[str, dict]:
    """`summarize` per category and over all rows (key "all")."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for s, c in zip(scores, categories, strict=True):
        groups[c].append(s)
    return {**{c: summarize(groups[c]) for c in sorted(groups)}, ALL: summarize(scores)}
