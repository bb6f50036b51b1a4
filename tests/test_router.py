"""Router policy (DESIGN.md §3), complexity score and usage predictor: pure functions, every rule with its reason."""

from __future__ import annotations

import pytest

from pz2.config import RouterConfig
from pz2.runtime.prediction import Prediction
from pz2.runtime.complexity import complexity
from pz2.runtime.predictor import UsagePredictor
from pz2.runtime.router import OFFER, SPECIALIST, UNIFIED, Router


def pred(qna: float, technical: float, general: float) -> Prediction:
    probs = {"qna": qna, "technical": technical, "general": general}
    label = max(probs, key=probs.get)
    return Prediction(label, probs[label], probs, None)


TECH, QNA, CHAT, UNSURE = pred(.02, .96, .02), pred(.95, .03, .02), pred(.01, .01, .98), pred(.33, .43, .24)
router = Router(RouterConfig())


def before(text: str, p: Prediction, explicit: str | None = None):
    return router.before(text, p, complexity(text, p), explicit)


@pytest.mark.parametrize("text,phrase", [
    ("SketchUp expert mode advanced modeling", "expert mode"),
    ("Can I get a MORE ACCURATE ANSWER about TCP?", "more accurate answer"),
    ("전문가 모드로 알려줘: 파이썬 리스트", "전문가 모드"),
    ("더 정확한 답변 부탁해요", "더 정확한 답변"),
])
def test_explicit_requests_in_english_and_korean_go_to_the_specialist_at_once(text: str, phrase: str) -> None:
    assert router.expert_phrase(text) == phrase
    decision = before(text, TECH, router.expert_phrase(text))
    assert (decision.route, decision.reason, decision.category) == (SPECIALIST, "explicit_request", "technical")
    assert phrase in decision.detail


def test_the_expert_command_or_flag_works_without_any_phrase() -> None:
    decision = before("What is entropy?", QNA, "/expert")
    assert (decision.route, decision.reason, decision.category) == (SPECIALIST, "explicit_request", "qna")


def test_an_explicit_request_on_general_text_picks_a_specialist() -> None:
    # no specialist exists for general: a named tool tips it to technical, otherwise the likelier one
    assert before("expert mode: SketchUp", CHAT, "expert mode").category == "technical"
    assert before("expert mode please", pred(.2, .1, .7), "expert mode").category == "qna"


def test_general_never_escalates_whatever_its_complexity() -> None:
    long = ("I feel sad today and also I wonder how Python, Docker, AutoCAD and Blender errors make my "
            "kernel driver crash? And what should I do? And how do I configure the server?")
    assert complexity(long, CHAT).score > RouterConfig().complexity_threshold
    decision = before(long, CHAT)
    assert (decision.route, decision.reason) == (UNIFIED, "general")


def test_complexity_above_the_threshold_goes_to_the_specialist_before_generation() -> None:
    text = ("I get ModuleNotFoundError in Python when importing numpy inside a virtual environment on Windows, "
            "and also pip says the package is installed. How do I fix the PATH and which interpreter should VS Code use?")
    decision = before(text, TECH)
    assert (decision.route, decision.reason) == (SPECIALIST, "complexity")
    assert "> 0.60" in decision.detail
    # the threshold is the config's: raise it and the same message waits for the unified answer
    relaxed = Router(RouterConfig(complexity_threshold=0.95))
    assert relaxed.before(text, TECH, complexity(text, TECH), None) is None


def test_a_simple_question_waits_for_the_unified_answer() -> None:
    assert before("How to draw a line in CAD software?", TECH) is None


def test_confidence_below_the_threshold_escalates_above_it_stays() -> None:
    low, high = router.after(TECH, 0.41), router.after(TECH, 0.83)
    assert (low.route, low.reason, low.category) == (SPECIALIST, "low_confidence", "technical")
    assert "0.41 < 0.70" in low.detail
    assert (high.route, high.reason) == (UNIFIED, "confident")
    assert Router(RouterConfig(confidence_threshold=0.9)).after(TECH, 0.83).route == SPECIALIST


def test_low_confidence_on_an_unsure_category_offers_expert_mode() -> None:
    decision = router.after(UNSURE, 0.3)
    assert (decision.route, decision.reason, decision.category) == (OFFER, "offer", "technical")


def test_without_a_fitted_confidence_model_the_unified_answer_stands_and_says_why() -> None:
    decision = router.after(TECH, None)
    assert (decision.route, decision.reason) == (UNIFIED, "no_confidence_model")
    assert "pz2 train confidence" in decision.detail


@pytest.mark.parametrize("text,back", [
    ("네, 전문가 모드로 해주세요", True), ("yes", True), ("expert mode please", True), ("", True),
    ("SketchUp expert mode advanced modeling", False), ("expert mode: how do I trim in AutoCAD", False),
])
def test_an_expert_request_without_a_question_refers_back(text: str, back: bool) -> None:
    assert router.refers_back(text) is back


def test_complexity_grows_with_length_terms_and_parts() -> None:
    base = complexity("How do I export?", TECH).score
    terms = complexity("How do I export a SketchUp model with Blender and AutoCAD layers?", TECH).score
    parts = complexity("How do I export? And how do I import? Also which format?", TECH).score
    unsure = complexity("How do I export?", UNSURE).score
    assert base < terms and base < parts and base < unsure
    c = complexity("SketchUp에서 복잡한 곡면 모델링하는 고급 기법을 알려줘", UNSURE)
    assert {"SketchUp", "곡면", "고급"} <= set(c.terms) and 0 <= c.score <= 1


def test_predictor_learns_a_session_topic_and_global_habits() -> None:
    p = UsagePredictor(("qna", "technical"))
    assert p.predict("new")[1] == pytest.approx(1 / 3)  # nothing seen: uniform over three categories
    p.observe("alice", "technical")
    p.observe("alice", "technical")
    name, prob = p.predict("alice")
    assert name == "technical" and prob > 0.5  # preloaded at the default preload_min_probability
    p.observe("alice", "general")  # an aside does not make her forget the topic
    assert p.predict("alice")[0] == "technical"
    for _ in range(20):  # everybody else asks qna after small talk
        p.observe("bob", "general")
        p.observe("bob", "qna")
    p.observe("carol", "general")  # a new session's small talk: everybody else went on to qna
    assert p.predict("carol")[0] == "qna"
    p.end("alice")
    assert p.probabilities("alice") == p.probabilities("nobody")


def test_predictor_demand_is_what_other_active_sessions_expect() -> None:
    p = UsagePredictor(("qna", "technical"))
    for _ in range(3):
        p.observe("alice", "technical")
        p.observe("bob", "qna")
    assert p.demand("technical", excluding="bob") > 0.5  # alice is on technical
    assert p.demand("technical", excluding="alice") < p.probabilities("alice")["technical"]
    assert p.demand("qna", excluding="bob") < 0.5
