"""Reference-based text metrics for one answer, from the standard packages.

ROUGE-L (F1 of the longest common subsequence of words) comes from Google's `rouge-score`, chrF
and BLEU from `sacrebleu`, so the numbers mean what they mean in papers; all are rescaled to 0..1.
Factual accuracy follows the SQuAD convention: an answer is right when the normalised reference
(lowercase, no punctuation, no articles) appears in the normalised answer as whole words.
"""

from __future__ import annotations

import re
import string
from functools import cache
from typing import Any

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans({c: " " for c in string.punctuation})
_WORD = re.compile(r"\w+")


@cache
def _rouge() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def _both_empty(prediction: str, reference: str) -> bool | None:
    """True when both are empty (identical answers), False when one is; None when neither is."""
    p, r = not prediction.strip(), not reference.strip()
    return (p and r) if (p or r) else None


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 over lowercased word tokens (rouge-score's tokenizer, no stemming)."""
    empty = _both_empty(prediction, reference)
    if empty is not None:
        return float(empty)
    return float(_rouge().score(reference, prediction)["rougeL"].fmeasure)


def chrf(prediction: str, reference: str) -> float:
    """chrF (character n-grams 1..6, beta 2: recall weighs twice precision), sacrebleu's sentence score."""
    from sacrebleu.metrics import CHRF

    empty = _both_empty(prediction, reference)
    if empty is not None:
        return float(empty)
    return CHRF().sentence_score(prediction, [reference]).score / 100


def bleu(prediction: str, reference: str) -> float:
    """Sentence BLEU with sacrebleu's default exponential smoothing (short answers have few 4-grams)."""
    from sacrebleu.metrics import BLEU

    empty = _both_empty(prediction, reference)
    if empty is not None:
        return float(empty)
    return min(1.0, BLEU(effective_order=True).sentence_score(prediction, [reference]).score / 100)


def normalize_answer(text: str) -> str:
    """SQuAD's answer normalisation: lowercase, punctuation and articles removed, spaces folded."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())


def contains_answer(prediction: str, reference: str) -> bool:
    """The normalised reference occurs in the normalised prediction, on word boundaries."""
    ref = normalize_answer(reference)
    return bool(ref) and f" {ref} " in f" {normalize_answer(prediction)} "


def repeats_ngram(text: str, n: int = 4) -> bool:
    """Some word n-gram occurs twice: the looping ("Click the button again" x5) a reader notices."""
    words = _WORD.findall(text.lower())
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return len(grams) != len(set(grams))


def words(text: str) -> int:
    return len(_WORD.findall(text))


# what a person types as it is written: `code`, shortcuts (Ctrl+Shift+L), flags (--soft, -la), names with
# inner punctuation (HEAD~1, os.path.join, @1, C:\Users) and CamelCase names (FreezePanes, SketchUp)
_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_TYPED = re.compile(r"(?<![\w-])(?:--?[A-Za-z][\w-]*|\w+(?:\+\w+)+|[\w@$]*\w[~@/\\_=:.][\w~@/\\_=:.]*\w|@\w+"
                    r"|[A-Z][a-z]+[A-Z]\w*)")
_ABBREVIATION = re.compile(r"(?:[A-Za-z]\.)+[A-Za-z]?")   # e.g, i.e, U.S


def key_phrases(text: str) -> set[str]:
    """The commands and key phrases of a passage, which an answer built on it should copy verbatim."""
    typed = {t for t in _TYPED.findall(_CODE_SPAN.sub(" ", text)) if not _ABBREVIATION.fullmatch(t)}
    return {m.strip() for m in _CODE_SPAN.findall(text)} | typed


def faithful_copy(answer: str, passage: str) -> float | None:
    """Share of the passage's key phrases that the answer writes verbatim; None when it has none."""
    keys = key_phrases(passage)
    return sum(k in answer for k in keys) / len(keys) if keys else None


def odd_words(answer: str, sources: str, whole_words: set[str]) -> list[str]:
    """Words of the answer found neither in its sources (question and passages) nor among the tokenizer's whole
    words: where a glued ("usuallyexchange") or split ("Inter section") word shows, for a person to read."""
    known = {w.lower() for w in _WORD.findall(sources)}
    return sorted({w for w in re.findall(r"[A-Za-z]+", answer)
                   if w.lower() not in known and w not in whole_words and w.lower() not in whole_words})
