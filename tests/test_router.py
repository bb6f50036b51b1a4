"""Router policy (DESIGN.md §3), complexity score and usage predictor: pure functions, every rule with its reason."""

from __future__ import annotations

import pytest

from pz2.config import RouterConfig
from pz2.runtime.complexity import complexity
from pz2.runtime.prediction import Prediction
from pz2.runtime.predictor import UsagePredictor
from pz2.runtime.router import OFFER, SPECIALIST, UNIFIED, Request, Router


def pred(qna: float, technical: float, general: float) -> Prediction:
    probs = {"qna": qna, "technical": technical, "general": general}
    label = max(probs, key=probs.get)
    return Prediction(label, probs[label], probs, None)


TECH, QNA, CHAT, UNSURE = pred(.02, .96, .02), pred(.95, .03, .02), pred(.01, .01, .98), pred(.33, .43, .24)
router = Router(RouterConfig())


def before(text: str, p: Prediction, explicit: str | None = None):
    request = None if explicit is None else Request("command" if explicit == "/expert" else "phrase", explicit)
    return router.before(text, p, complexity(text, p), request)


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


def test_where_nobody_can_accept_an_offer_a_low_confidence_answer_escalates() -> None:
    decision = router.after(UNSURE, 0.3, can_offer=False)
    assert (decision.route, decision.reason, decision.category) == (SPECIALIST, "low_confidence", "technical")


def test_a_low_confidence_answer_escalates_only_where_the_knowledge_base_gives_grounds() -> None:
    grounded = router.after(TECH, 0.41, grounds=True)
    bare = router.after(TECH, 0.41, grounds=False)
    assert (grounded.route, grounded.reason) == (SPECIALIST, "low_confidence")
    assert (bare.route, bare.reason) == (UNIFIED, "no_grounds") and "no passage" in bare.detail
    assert router.after(UNSURE, 0.3, grounds=False).reason == "offer"   # the user may still want it
    assert router.after(UNSURE, 0.3, can_offer=False, grounds=False).reason == "no_grounds"
    assert router.after(TECH, 0.41).route == SPECIALIST                       # not checked (no knowledge base)
    assert router.after(TECH, 0.83, grounds=False).reason == "confident"
    assert Router(RouterConfig(require_grounds=False)).after(TECH, 0.41, grounds=False).route == SPECIALIST


def test_no_confidence_stands_on_a_question_the_english_only_base_reads_in_part() -> None:
    # seed scenario 2: "SketchUp에서 복잡한 곡면 모델링하는 고급 기법을 알려줘" — the base reads "SketchUp"
    from pz2.runtime.language import english_coverage
    coverage = english_coverage("SketchUp에서 복잡한 곡면 모델링하는 고급 기법을 알려줘")
    assert coverage < RouterConfig().trusted_coverage
    offered = router.after(UNSURE, 0.95, coverage=coverage)
    assert (offered.route, offered.reason) == (OFFER, "offer") and "reads 29%" in offered.detail
    escalated = router.after(TECH, 0.95, can_offer=False, coverage=coverage)
    assert (escalated.route, escalated.reason) == (SPECIALIST, "partly_read")
    assert router.after(TECH, 0.95, can_offer=False, grounds=False, coverage=coverage).reason == "no_grounds"
    assert router.after(TECH, 0.95, coverage=0.95).reason == "confident"
    assert Router(RouterConfig(), english_only=False).after(TECH, 0.95, coverage=coverage).reason == "confident"


def test_a_threshold_in_force_replaces_the_configured_one() -> None:
    assert router.after(TECH, 0.41, threshold=0.3).reason == "confident"
    low = router.after(TECH, 0.41, threshold=0.5)
    assert low.reason == "low_confidence" and "0.41 < 0.50" in low.detail


def test_a_request_says_how_it_was_made() -> None:
    assert router.request("hello", command=True, offered=False) == Request("command", "/expert")
    assert router.request("SketchUp expert mode", command=False, offered=False) == Request("phrase", "expert mode")
    assert router.request("네", command=False, offered=True) == Request("offer_accepted", "네")
    assert router.request("네", command=False, offered=False) is None       # nothing was offered
    assert router.request("How do I trim?", command=False, offered=True) is None  # a new question
    accepted = router.before("x", TECH, complexity("x", TECH), Request("offer_accepted", "네"))
    assert (accepted.reason, accepted.detail) == ("explicit_request", "accepted the expert-mode offer ('네')")


def test_the_reasons_are_design_section_3s_and_the_two_exceptions() -> None:
    from pz2.runtime.router import REASONS
    assert set(REASONS) == {"explicit_request", "model_requested", "complexity", "general", "confident",
                            "low_confidence", "no_grounds", "partly_read", "offer", "no_confidence_model", "fallback",
                            "unreadable_input"}


def test_the_complexity_weights_come_from_the_config() -> None:
    from pz2.config import ComplexityWeights, ModelConfig, load_config
    from pz2.errors import ConfigError
    text = "How do I export a SketchUp model with Blender and AutoCAD layers?"
    only_terms = ComplexityWeights(length=0, terms=1, parts=0, uncertainty=0)
    assert complexity(text, TECH, only_terms).score == pytest.approx(min(1, 3 / 4))
    with pytest.raises(ConfigError, match="sum to 1"):
        load_config(ModelConfig, None, {"runtime.router.complexity_weights.terms": 0.9})


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


@pytest.mark.parametrize("text", [
    "전문가 모드: AutoCAD에서 선을 자르는 방법 알려줘",
    "SketchUp에서 그룹 만드는 방법이 뭐예요? 전문가 모드로",
    "엑셀에서 피벗 테이블을 어떻게 만들어요? 더 정확한 답변 부탁해요",
    "전문가 모드로 알려줘: 포토샵에서 배경 지우는 법",
    "expert mode: Blender에서 how to add a modifier",
    "How do I freeze panes in Excel? 전문가 모드",
])
def test_a_how_to_about_a_named_tool_reaches_technical_support_in_any_language(text: str) -> None:
    # the English encoder reads the few Latin letters of a Korean sentence as a question of fact
    decision = before(text, QNA, router.expert_phrase(text))
    assert (decision.route, decision.category) == (SPECIALIST, "technical"), text


@pytest.mark.parametrize("text", [
    "전문가 모드: AutoCAD는 누가 만들었나요?",      # a fact about a tool, not a how-to
    "전문가 모드: 파이썬의 GIL이 무엇인가요?",
    "expert mode: what is the capital of France?",
])
def test_a_question_of_fact_stays_with_the_qna_specialist(text: str) -> None:
    assert before(text, QNA, router.expert_phrase(text)).category == "qna", text


def test_sessions_are_forgotten_when_idle_or_too_many_and_end_in_the_predictor() -> None:
    """A server meets a new session per user: idle ones expire, the least recently active go past the limit,
    and each forgotten session is ended in the usage predictor, so neither store grows for ever."""
    from pz2.runtime.predictor import UsagePredictor
    from pz2.runtime.session import Sessions

    now = [0.0]
    predictor = UsagePredictor(("qna", "technical"))
    sessions = Sessions(idle_s=60, limit=3, on_end=predictor.end, clock=lambda: now[0])
    for name in ("a", "b", "c"):
        sessions.get(name).last = ("q", None)
        predictor.observe(name, "qna")
    now[0] = 30
    assert sessions.get("a").last == ("q", None), "a remembered session keeps its memory"
    sessions.get("d")                             # a fourth: the least recently active (b) is forgotten
    assert len(sessions) == 3 and sessions.get("b").last is None
    assert "b" not in predictor._recent and "b" not in predictor._last
    now[0] = 100                                  # a, c and d idle for 70 s or more: all forgotten by the next turn
    sessions.get("e")
    assert len(sessions) == 1
    assert set(predictor._recent) == set() and set(predictor._last) == set()
    for i in range(1000):                         # a thousand one-turn users leave at most `limit` behind
        sessions.get(f"user-{i}")
        predictor.observe(f"user-{i}", "technical")
    assert len(sessions) == 3 and len(predictor._recent) <= 3


def test_the_router_decides_unreadable_input_and_the_fallback_too() -> None:
    """Every decision of where a turn goes is the router's, the honest reply and the fallback included."""
    unreadable = router.unreadable("오늘 날씨 어때?", CHAT)
    assert (unreadable.route, unreadable.reason) == (UNIFIED, "unreadable_input")
    assert router.unreadable("AutoCAD에서 선 자르는 방법", TECH) is None, "a few Latin letters are readable"
    assert Router(RouterConfig(), english_only=False).unreadable("오늘 날씨 어때?", CHAT) is None
    chosen = router.after(TECH, 0.2, can_offer=False)
    fallback = Router.fallback(chosen, "technical: the adapter folder is missing")
    assert (fallback.route, fallback.reason, fallback.category) == (UNIFIED, "fallback", "technical")
    assert fallback.detail.startswith(chosen.detail) and "the adapter folder is missing" in fallback.detail
