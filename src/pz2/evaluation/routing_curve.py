"""The router's quality curve and RouteLLM's measures of it (Ong et al. 2024, "RouteLLM").

Per row we know the quality of the unified ("weak") answer, of the specialist ("strong") answer,
and the router's score (the confidence that the unified answer is good). Escalating the rows with
the lowest confidence first and sweeping the threshold from 0 to 1 traces quality against the
escalation rate. With q_weak and q_strong the mean quality when nothing / everything escalates:

- PGR (performance gap recovered) = (q(router) - q_weak) / (q_strong - q_weak);
- APGR = the area under PGR over the escalation rate, trapezoid rule on 0..1 (a random router's
  expected curve is the diagonal: APGR 0.5);
- CPT(x) = the smallest escalation rate whose PGR reaches x.

When the specialist is not better than the unified model (q_strong - q_weak <= `min_gap`), PGR
has no meaning: the measures are None and `note` says why.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

MIN_GAP = 1e-3


@dataclass(frozen=True)
class CurvePoint:
    threshold: float          # escalate rows whose score is below this
    escalation_rate: float
    quality: float
    pgr: float | None


@dataclass(frozen=True)
class RoutingCurve:
    rows: int
    q_weak: float             # nothing escalated: the unified model alone
    q_strong: float           # everything escalated: the specialists alone
    points: list[CurvePoint]
    apgr: float | None
    cpt50: float | None
    cpt80: float | None
    note: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def pgr(quality: float, q_weak: float, q_strong: float, min_gap: float = MIN_GAP) -> float | None:
    gap = q_strong - q_weak
    return (quality - q_weak) / gap if gap > min_gap else None


def apgr(rates: np.ndarray, pgrs: np.ndarray) -> float:
    """Trapezoid area under PGR over escalation rate; the curve must span 0..1."""
    return float(np.sum((rates[1:] - rates[:-1]) * (pgrs[1:] + pgrs[:-1]) / 2))


def cpt(rates: np.ndarray, pgrs: np.ndarray, target: float) -> float | None:
    """Smallest escalation rate at which PGR reaches `target` (None if it never does)."""
    reached = rates[pgrs >= target - 1e-12]
    return float(reached.min()) if len(reached) else None


def threshold_curve(q_weak: np.ndarray, q_strong: np.ndarray, score: np.ndarray,
                    min_gap: float = MIN_GAP) -> RoutingCurve:
    """Sweep the threshold over every distinct score: escalate `score < threshold`.

    Rows with equal scores escalate together, so each point is a threshold that exists; the
    trapezoid between two points is what random tie-breaking would give on average.
    """
    q_weak, q_strong, score = (np.asarray(a, dtype=np.float64) for a in (q_weak, q_strong, score))
    n = len(score)
    if n == 0:
        return RoutingCurve(0, 0.0, 0.0, [], None, None, None, "no rows that the router can escalate")
    weak_mean, strong_mean = float(q_weak.mean()), float(q_strong.mean())
    order = np.argsort(score, kind="stable")
    gain = np.concatenate([[0.0], np.cumsum((q_strong - q_weak)[order])])   # (n+1,): k lowest escalated
    sorted_scores = score[order]
    # k escalated is reachable only where the k-th and (k+1)-th scores differ (or at the ends)
    ks = [0] + [k for k in range(1, n) if sorted_scores[k] > sorted_scores[k - 1]] + [n]
    points = []
    for k in ks:
        threshold = float(sorted_scores[k]) if k < n else float(np.nextafter(max(1.0, sorted_scores[-1]), np.inf))
        quality = weak_mean + gain[k] / n
        points.append(CurvePoint(min(threshold, 1.0) if k < n else 1.0, k / n, quality,
                                 pgr(quality, weak_mean, strong_mean, min_gap)))
    if strong_mean - weak_mean <= min_gap:
        note = (f"the specialists are not better than the unified model here (quality {strong_mean:.4f} vs "
                f"{weak_mean:.4f}): escalating cannot recover a gap, so PGR, APGR and CPT are not defined")
        return RoutingCurve(n, weak_mean, strong_mean, points, None, None, None, note)
    rates = np.array([p.escalation_rate for p in points])
    pgrs = np.array([p.pgr for p in points])
    return RoutingCurve(n, weak_mean, strong_mean, points, apgr(rates, pgrs), cpt(rates, pgrs, 0.5),
                        cpt(rates, pgrs, 0.8))


def oracle_curve(q_weak: np.ndarray, q_strong: np.ndarray) -> RoutingCurve:
    """The best any router could do: escalate the rows the specialist improves most, first."""
    q_weak, q_strong = np.asarray(q_weak, dtype=np.float64), np.asarray(q_strong, dtype=np.float64)
    # distinct scores (rank by gain, ties broken by position) so every k is a point
    rank = np.empty(len(q_weak))
    rank[np.argsort(-(q_strong - q_weak), kind="stable")] = np.arange(len(q_weak))
    return threshold_curve(q_weak, q_strong, rank)


def without_ratios(curve: RoutingCurve, note: str) -> RoutingCurve:
    """The same curve with PGR and its measures withdrawn, and why: for a gap that may be noise."""
    return replace(curve, points=[replace(p, pgr=None) for p in curve.points], apgr=None, cpt50=None, cpt80=None,
                   note=note)


def point_at(q_weak: np.ndarray, q_strong: np.ndarray, score: np.ndarray, threshold: float) -> CurvePoint:
    """The curve's point for one threshold (the configured one)."""
    q_weak, q_strong, score = (np.asarray(a, dtype=np.float64) for a in (q_weak, q_strong, score))
    escalate = score < threshold
    quality = float(np.where(escalate, q_strong, q_weak).mean()) if len(score) else 0.0
    return CurvePoint(threshold, float(escalate.mean()) if len(score) else 0.0, quality,
                      pgr(quality, float(q_weak.mean()), float(q_strong.mean())) if len(score) else None)
