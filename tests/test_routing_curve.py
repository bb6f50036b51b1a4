"""PGR, APGR and CPT on curves computed by hand, and the two reference routers."""

import numpy as np
import pytest

from pz2.evaluation.routing_curve import oracle_curve, pgr, point_at, threshold_curve


def test_a_known_curve() -> None:
    # 4 rows; the specialist fixes rows 0 and 1 (0 -> 1), rows 2 and 3 are equal (1 and 0 either way)
    weak = np.array([0.0, 0.0, 1.0, 0.0])
    strong = np.array([1.0, 1.0, 1.0, 0.0])
    score = np.array([0.1, 0.4, 0.2, 0.9])   # escalation order: row 0, row 2, row 1, row 3
    c = threshold_curve(weak, strong, score)
    assert (c.q_weak, c.q_strong) == (0.25, 0.75)
    assert [p.escalation_rate for p in c.points] == [0, 0.25, 0.5, 0.75, 1.0]
    assert [p.quality for p in c.points] == pytest.approx([0.25, 0.5, 0.5, 0.75, 0.75])
    assert [p.pgr for p in c.points] == pytest.approx([0, 0.5, 0.5, 1, 1])
    # trapezoids: 0.25 * (0+.5)/2 + 0.25 * (.5+.5)/2 + 0.25 * (.5+1)/2 + 0.25 * (1+1)/2
    assert c.apgr == pytest.approx(0.25 * (0.25 + 0.5 + 0.75 + 1.0))
    assert c.cpt50 == 0.25 and c.cpt80 == 0.75
    assert [p.threshold for p in c.points] == pytest.approx([0.1, 0.2, 0.4, 0.9, 1.0])
    configured = point_at(weak, strong, score, 0.3)    # rows 0 and 2 below 0.3
    assert (configured.escalation_rate, configured.quality, configured.pgr) == (0.5, 0.5, 0.5)


def test_tied_scores_escalate_together() -> None:
    c = threshold_curve(np.zeros(4), np.ones(4), np.array([0.5, 0.5, 0.5, 0.9]))
    assert [p.escalation_rate for p in c.points] == [0, 0.75, 1.0]
    assert c.apgr == pytest.approx(0.5)       # the straight line of random tie-breaking


def test_a_random_router_recovers_half_the_area() -> None:
    rng = np.random.default_rng(0)
    weak, strong = rng.random(4000) < 0.4, rng.random(4000) < 0.7
    c = threshold_curve(weak, strong, rng.random(4000))
    assert c.apgr == pytest.approx(0.5, abs=0.03)


def test_the_oracle_is_at_least_as_good_as_any_router() -> None:
    rng = np.random.default_rng(1)
    weak, strong = rng.random(500), rng.random(500) + 0.2
    oracle, some = oracle_curve(weak, strong), threshold_curve(weak, strong, rng.random(500))
    assert oracle.apgr >= some.apgr
    assert oracle.cpt80 <= some.cpt80
    # a router whose score is the unified answer's own quality is an informed one: above random
    informed = threshold_curve(weak, strong, weak)
    assert informed.apgr > 0.55


def test_no_gap_means_no_ratio_and_says_why() -> None:
    c = threshold_curve(np.array([0.6, 0.7]), np.array([0.5, 0.6]), np.array([0.2, 0.8]))
    assert c.apgr is None and c.cpt50 is None and all(p.pgr is None for p in c.points)
    assert "not better" in c.note
    assert pgr(0.5, 0.5, 0.5) is None and pgr(0.75, 0.5, 1.0) == 0.5


def test_withdrawn_ratios_keep_the_curve_and_say_why() -> None:
    from pz2.evaluation.routing_curve import without_ratios

    c = without_ratios(threshold_curve(np.array([0.0, 1.0]), np.array([1.0, 1.0]), np.array([0.3, 0.6])), "noise")
    assert c.apgr is None and c.cpt50 is None and c.note == "noise"
    assert [p.quality for p in c.points] == [0.5, 1.0, 1.0] and all(p.pgr is None for p in c.points)
