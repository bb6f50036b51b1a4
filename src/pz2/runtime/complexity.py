"""How demanding a message is, before any answer is generated: a score in [0, 1].

    complexity = 0.30 · min(1, words / 40)               long messages carry more to get right
               + 0.35 · min(1, terms / 4)                named tools and technical vocabulary
               + 0.25 · min(1, (parts − 1) / 2)           several questions in one message
               + 0.10 · (1 − margin)                      the classifier torn between categories

(the weights are `runtime.router.complexity_weights`, these their defaults)

`terms` counts distinct hits of a lexicon (the tools of the technical topic bank plus technical
and "advanced" words, English and Korean); `parts` counts question marks and joined requests
("and how", "also", numbered lines); `margin` is the classifier's top probability minus the
second. A one-line how-to question scores about 0.15; a long multi-part troubleshooting
question about 0.85. Every component is returned, so a routing decision can be explained.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from pz2.config import ComplexityWeights
from pz2.data import glossary
from pz2.data.banks.technical import PROBLEMS, TASKS
from pz2.runtime.prediction import Prediction

_VOCABULARY = (
    "advanced", "complex", "in depth", "in-depth", "detailed", "step by step", "expert", "professional",
    "error", "exception", "crash", "install", "configure", "configuration", "compile", "debug", "deploy",
    "modeling", "modelling", "render", "rendering", "script", "api", "database", "server", "network",
    "driver", "firmware", "kernel", "registry", "interpreter", "virtual environment", "path", "plugin",
    "extension", "macro", "parametric", "mesh", "surface", "spline", "nurbs", "boolean", "layer",
    "고급", "복잡", "전문", "자세히", "상세", "오류", "에러", "설치", "설정", "모델링", "곡면", "렌더링",
    "스크립트", "서버", "네트워크", "드라이버", "플러그인",
)
_JOINERS = re.compile(r"\b(?:and (?:how|what|why|which|where|when|can)|also|additionally|then how)\b|(?:^|\n)\s*\d+[.)]\s", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9+#.'-]*|[\uac00-\ud7a3]+")


@dataclass(frozen=True)
class Complexity:
    score: float
    words: int
    terms: tuple[str, ...]
    parts: int
    margin: float

    def as_dict(self) -> dict[str, object]:
        return {"score": round(self.score, 4), "words": self.words, "terms": list(self.terms),
                "parts": self.parts, "margin": round(self.margin, 4)}


KOREAN_TOOLS = tuple(glossary.TOOLS)   # a Korean message names "엑셀", not "Excel"
_HOW_TO = re.compile(r"\bhow (?:do|can|could|should|to)\b|\bsteps? to\b|\bways? to\b|"
                     r"방법|어떻게|하려면|는 ?법(?:을|이|은|좀)?(?:$|[\s?.!,])", re.IGNORECASE)


def _tools() -> set[str]:
    return {t.tool for t in TASKS} | {p.tool for p in PROBLEMS} | set(KOREAN_TOOLS)


def asks_how_to(text: str) -> bool:
    """A request to do something ("how do I", "방법", "어떻게"), in English or Korean."""
    return bool(_HOW_TO.search(text))


@cache
def _lexicon(tools_only: bool) -> tuple[tuple[str, re.Pattern[str]], ...]:
    names = _tools() if tools_only else _tools() | set(_VOCABULARY)
    entries = []
    for name in sorted(names, key=len, reverse=True):
        word = re.escape(name.lower())
        # English terms match whole words; Korean stems also match inside a word (곡면을, 모델링하는)
        pattern = word if re.search(r"[\uac00-\ud7a3]", name) else rf"(?<![a-z0-9]){word}(?![a-z0-9])"
        entries.append((name, re.compile(pattern)))
    return tuple(entries)


def lexicon_terms(text: str, tools_only: bool = False) -> tuple[str, ...]:
    """Distinct lexicon entries in `text` (or only the named tools); a longer entry hides the shorter ones inside it."""
    low = text.lower()
    found: list[str] = []
    for name, pattern in _lexicon(tools_only):
        if pattern.search(low):
            found.append(name)
            low = pattern.sub(" ", low)
    return tuple(found)


def complexity(text: str, prediction: Prediction, weights: ComplexityWeights = ComplexityWeights()) -> Complexity:
    words = len(_WORD.findall(text))
    terms = lexicon_terms(text)
    parts = max(1, text.count("?") + text.count("？")) + len(_JOINERS.findall(text))
    top = sorted(prediction.probs.values(), reverse=True)
    margin = top[0] - top[1] if len(top) > 1 else 1.0
    score = (weights.length * min(1.0, words / 40) + weights.terms * min(1.0, len(terms) / 4)
             + weights.parts * min(1.0, (parts - 1) / 2) + weights.uncertainty * (1 - margin))
    return Complexity(score, words, terms, parts, margin)
