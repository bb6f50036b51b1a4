"""The grounded prompt and its citations: one format for RAFT training rows and for the runtime.

A specialist sees numbered passages, then the question, and cites what it uses as [1], [2].
Training and inference both build the user turn here, so the model is asked at run time
exactly the way it learned to answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from pz2.data.schema import CITATION

INSTRUCTION = ("Answer from the sources above and cite each one you use as [1], [2]. "
               "Ignore a source that does not answer the question.")
NO_SOURCE = "I have no source for this in the knowledge base, so the answer below is unchecked."
# The grounded prompt's own framing: an answer that starts a line with it has ended and is writing its prompt
# again ("Question: What tar options extract a .gz archive? Answer from the sources above ..."): 8 of 48
# grounded answers of `pz2 eval kb` did, once answers could run to 192 tokens
PROMPT_FRAMING = ("\nSources:", "\nQuestion:", "\nAnswer from the sources")


@dataclass(frozen=True)
class Passage:
    n: int              # its number in the prompt: what [n] cites
    path: str
    title: str
    text: str
    line_start: int = 0
    line_end: int = 0
    score: float = 0.0       # fused rank score
    similarity: float = 0.0  # cosine to the question

    def source(self, cited: bool) -> dict[str, Any]:
        """The passage as the routing record lists it."""
        d = asdict(self)
        d.pop("text")
        return {**d, "cited": cited}


def fit_passages(passages: list[Passage], tokenizer: Any, max_tokens: int) -> list[Passage]:
    """Passages in order until `max_tokens` of their text; the one that crosses the budget is cut
    to fit (at a token boundary), the rest dropped."""
    out: list[Passage] = []
    left = max_tokens
    for p in passages:
        ids = tokenizer(p.text, add_special_tokens=False)["input_ids"]
        if len(ids) > left:
            if left >= 16:
                text = tokenizer.decode(ids[:left], skip_special_tokens=True).rstrip() + " …"
                out.append(Passage(**{**asdict(p), "text": text}))
            break
        out.append(p)
        left -= len(ids)
    return out


def grounded_message(question: str, passages: list[Passage], reply_in: str | None = None) -> str:
    """The user turn of a grounded specialist: the sources, the question, how to answer; `reply_in`: the
    language to answer in when it is not the passages' (a base that writes the question's language)."""
    if not passages:
        return question
    sources = "\n\n".join(f"[{p.n}] {p.title}\n{p.text}" for p in passages)
    language = f" Answer in {reply_in}." if reply_in else ""
    return f"Sources:\n{sources}\n\nQuestion: {question}\n\n{INSTRUCTION}{language}"


def cited(answer: str, passages: list[Passage]) -> list[int]:
    """The passage numbers an answer cites, in order of first citation; numbers with no passage are ignored."""
    numbers = {p.n for p in passages}
    out: list[int] = []
    for m in CITATION.finditer(answer):
        n = int(m.group(1))
        if n in numbers and n not in out:
            out.append(n)
    return out


def strip_citations(answer: str) -> str:
    """An answer without [n] marks: an ungrounded answer must not cite what it was never given."""
    return re.sub(r"\s*\[\d{1,2}\]", "", answer)


def unsourced(answer: str) -> str:
    """What a specialist says when no passage cleared the floor: that it has no source, then its answer."""
    return f"{NO_SOURCE}\n\n{strip_citations(answer)}"


@dataclass(frozen=True)
class Grounded:
    """One specialist turn's grounding, as the assistant serves it and `pz2 eval kb` measures it: the user
    message with its passages, the passages, and how long the search took (None: nothing was searched,
    without a knowledge base or with retrieval off). The answer then opens with the no-source notice when
    a search found nothing above the floor, and lists its passages, cited or not, as sources."""

    message: str = ""
    passages: list[Passage] = field(default_factory=list)
    ms: float | None = None

    @property
    def without_source(self) -> bool:
        return self.ms is not None and not self.passages

    def prefix(self, piece: Callable[[str], None]) -> Callable[[str], None]:
        """A streamed answer with no source opens with the notice, before its first token."""
        if self.without_source:
            piece(NO_SOURCE + "\n\n")
        return piece

    def finish(self, answer: str) -> str:
        return unsourced(answer) if self.without_source else answer

    def sources(self, answer: str) -> list[dict[str, Any]]:
        used = set(cited(answer, self.passages))
        return [p.source(p.n in used) for p in self.passages]
