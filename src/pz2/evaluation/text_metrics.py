"""Reference-based text metrics for generated answers: ROUGE-L and chrF, sentence level.

Small and dependency-free; they follow the usual definitions (ROUGE-L F1 over lowercased word
tokens; chrF with character n-grams 1..6, spaces removed, beta = 2, as sacrebleu's default).
"""

from __future__ import annotations

import re
from collections import Counter

_WORD = re.compile(r"\w+")


def _lcs(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, start=1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """F1 of the longest common subsequence of words."""
    p, r = _WORD.findall(prediction.lower()), _WORD.findall(reference.lower())
    if not p or not r:
        return float(p == r)
    lcs = _lcs(p, r)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(p), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


def chrf(prediction: str, reference: str, order: int = 6, beta: float = 2.0) -> float:
    """Character n-gram F-score (0..1), recall weighted `beta` times as much as precision."""
    p, r = "".join(prediction.split()), "".join(reference.split())
    precisions, recalls = [], []
    for n in range(1, order + 1):
        pc = Counter(p[i : i + n] for i in range(len(p) - n + 1))
        rc = Counter(r[i : i + n] for i in range(len(r) - n + 1))
        if not pc or not rc:
            continue
        overlap = sum((pc & rc).values())
        precisions.append(overlap / sum(pc.values()))
        recalls.append(overlap / sum(rc.values()))
    if not precisions:
        return float(p == r)
    prec, rec = sum(precisions) / len(precisions), sum(recalls) / len(recalls)
    if prec + rec == 0:
        return 0.0
    return (1 + beta**2) * prec * rec / (beta**2 * prec + rec)
