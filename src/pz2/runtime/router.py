"""The router policy of DESIGN.md §3, as pure functions of what is known about a turn: every decision
of where a turn goes is made here, and the assistant only carries it out.

First: text an English-only base cannot read gets an honest reply; a request naming its model (the API's
`model`) goes there. Before generating: an explicit request goes to the specialist at once; `general`
stays on the unified model; a complexity above the threshold goes to the specialist. After the unified
answer: a confidence below the threshold (or any, on a question the base reads only in part) escalates
when the knowledge base gives a specialist grounds, or, when the classifier is unsure which specialist
fits, offers expert mode so the user decides. A specialist that cannot load falls back to the unified
answer. Each decision carries its reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

from pz2.config import RouterConfig
from pz2.data.schema import LABELS, SPECIALIST_CATEGORIES
from pz2.runtime.complexity import Complexity, asks_how_to, lexicon_terms
from pz2.runtime.language import english_coverage
from pz2.runtime.prediction import Prediction

GENERAL = LABELS[2]
SPECIALISTS = SPECIALIST_CATEGORIES

UNIFIED, SPECIALIST, OFFER = "unified", "specialist", "offer"

# Words that carry no question of their own: "yes, expert mode please" refers to the last question.
_FILLERS = {
    "yes", "yeah", "yep", "sure", "ok", "okay", "please", "pls", "go", "ahead", "do", "it", "give", "me", "an",
    "a", "the", "use", "switch", "to", "on", "turn", "with", "want", "i", "would", "like", "that", "this", "answer",
    "mode", "expert", "more", "accurate", "detailed", "for", "one", "can", "you", "네", "예", "응", "좋아요", "좋아",
    "해주세요", "해줘", "부탁해요", "부탁합니다", "로", "으로", "그래", "주세요", "답변", "모드", "전문가",
}
_TOKEN = re.compile(r"[A-Za-z]+|[\uac00-\ud7a3]+")


# Why a turn went where it went: DESIGN.md §3's rules, the API's named model, a fallback when a
# specialist cannot load, and input the base cannot read (an honest reply instead of a guess).
Reason = Literal["explicit_request", "model_requested", "complexity", "general", "confident", "low_confidence",
                 "no_grounds", "partly_read", "offer", "no_confidence_model", "fallback", "unreadable_input"]
REASONS: tuple[str, ...] = get_args(Reason)


@dataclass(frozen=True)
class Route:
    route: Literal["unified", "specialist", "offer"]
    reason: Reason
    detail: str            # the reason in words, with the numbers that decided it
    category: str          # the specialist's category (or general)


@dataclass(frozen=True)
class Request:
    """An explicit ask for a specialist: the `/expert` command or API flag, an expert phrase in the
    message, or a yes to the expert-mode offer; `words` as written, for the record."""

    how: Literal["command", "phrase", "offer_accepted"]
    words: str

    def describe(self) -> str:
        if self.how == "offer_accepted":
            return f"accepted the expert-mode offer ({self.words!r})"
        return f"asked for it ({self.words!r})"


class Router:
    def __init__(self, cfg: RouterConfig, english_only: bool = True) -> None:
        """`english_only`: the base reads English only (`runtime.english_only`)."""
        self.cfg = cfg
        self.english_only = english_only
        phrases = sorted((p.lower() for p in cfg.expert_phrases), key=len, reverse=True)
        self._phrases = re.compile("|".join(re.escape(p) for p in phrases))

    def expert_phrase(self, text: str) -> str | None:
        """The expert-mode phrase in `text`, if any (a `/expert` command or API flag is passed separately)."""
        m = self._phrases.search(text.lower())
        return m.group(0) if m else None

    def request(self, message: str, command: bool, offered: bool) -> Request | None:
        """The explicit request `message` makes: the command or flag, a phrase, or, right after an offer,
        a reply with no question of its own ("yes", "네")."""
        if command:
            return Request("command", "/expert")
        phrase = self.expert_phrase(message)
        if phrase:
            return Request("phrase", phrase)
        if offered and message.strip() and self.refers_back(message):
            return Request("offer_accepted", message.strip())
        return None

    def refers_back(self, text: str) -> bool:
        """An expert request with no question of its own ("네, 전문가 모드로 해주세요")."""
        rest = self._phrases.sub(" ", text.lower())
        return all(token in _FILLERS for token in _TOKEN.findall(rest))

    @staticmethod
    def specialist_for(prediction: Prediction, text: str) -> str:
        """The specialist a turn sent to one gets: a how-to about a named tool is technical support in
        any language (the English encoder reads "AutoCAD에서 선 자르는 방법" by its few Latin letters
        as a question of fact); otherwise the classifier's category, or, when it says general (no
        specialist exists for that), technical for a named tool, else the likelier specialist."""
        tools = lexicon_terms(text, tools_only=True)
        if tools and asks_how_to(text):
            return "technical"
        if prediction.label in SPECIALISTS:
            return prediction.label
        if tools:
            return "technical"
        return max(SPECIALISTS, key=lambda label: prediction.probs.get(label, 0.0))

    def unreadable(self, text: str, prediction: Prediction) -> Route | None:
        """A question with no English text, for an English-only base: answered with an honest reply in its
        script instead of a sentence the model would invent."""
        if not self.english_only or english_coverage(text) > 0:
            return None
        return Route(UNIFIED, "unreadable_input", "no English text: the base model reads English only "
                     "(runtime.english_only)", prediction.label)

    def before(self, text: str, prediction: Prediction, complexity: Complexity, request: Request | None) -> Route | None:
        """The decision that needs no answer yet, or None: let the unified model answer first."""
        if request:
            return Route(SPECIALIST, "explicit_request", request.describe(), self.specialist_for(prediction, text))
        if prediction.label == GENERAL:
            return Route(UNIFIED, "general", "general conversation stays on the unified model", GENERAL)
        if complexity.score > self.cfg.complexity_threshold:
            return Route(SPECIALIST, "complexity", f"complexity {complexity.score:.2f} > "
                         f"{self.cfg.complexity_threshold:.2f}", self.specialist_for(prediction, text))
        return None

    @staticmethod
    def requested(model: str, prediction: Prediction) -> Route:
        """The request named the model that answers (the API's `model`); the classifier's category is kept
        for the record."""
        if model == UNIFIED:
            return Route(UNIFIED, "model_requested", "the request named the unified model", prediction.label)
        if model not in SPECIALISTS:
            raise ValueError(f"no model {model!r}; choose {UNIFIED} or one of {list(SPECIALISTS)}")
        return Route(SPECIALIST, "model_requested", f"the request named the {model} specialist", model)

    def after(self, prediction: Prediction, confidence: float | None, can_offer: bool = True,
              threshold: float | None = None, grounds: bool | None = None, coverage: float = 1.0) -> Route:
        """The decision once the unified model has answered with `confidence`. `can_offer`: someone is
        there to accept an offer (a terminal chat, the API); in batch or single mode a low-confidence
        answer escalates instead (DESIGN.md §3, rule 3). `threshold`: the one in force (an escalation
        budget's), else the configured one. `grounds`: whether the knowledge base has a passage above the
        floor for the question (None: not checked): without one, escalating buys an answer as unsupported
        as the unified one, and with `require_grounds` the unified answer stands. An offer still goes out:
        the user decides, and a specialist without a source says so. `coverage`: the question's share the
        English-only base reads (`english_coverage`); below `trusted_coverage` no confidence stands."""
        category = prediction.label
        threshold = self.cfg.confidence_threshold if threshold is None else threshold
        if confidence is None:
            return Route(UNIFIED, "no_confidence_model",
                         "confidence not fitted (`pz2 train confidence`): the unified answer stands", category)
        partly_read = self.english_only and coverage < self.cfg.trusted_coverage
        if partly_read:
            why, reason = (f"the base reads {coverage:.0%} of the question (English only): its confidence "
                           f"{confidence:.2f} does not stand"), "partly_read"
        elif confidence >= threshold:
            return Route(UNIFIED, "confident", f"confidence {confidence:.2f} >= {threshold:.2f}", category)
        else:
            why, reason = f"confidence {confidence:.2f} < {threshold:.2f}", "low_confidence"
        if can_offer and prediction.confidence < self.cfg.offer_below_category_probability:
            return Route(OFFER, "offer", f"{why} and category {category} only {prediction.confidence:.2f} sure: "
                         "expert mode offered", category)
        if grounds is False and self.cfg.require_grounds:
            return Route(UNIFIED, "no_grounds", f"{why}, but no passage of the knowledge base clears the similarity "
                         "floor: a specialist would answer as unsupported", category)
        return Route(SPECIALIST, reason, why, category)

    @staticmethod
    def fallback(decision: Route, problem: str) -> Route:
        """The specialist `decision` chose could not load: the unified answer stands, with both reasons."""
        return Route(UNIFIED, "fallback", f"{decision.detail}; {problem}: the unified answer stands", decision.category)
