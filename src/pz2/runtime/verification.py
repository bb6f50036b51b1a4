"""The unified answer checked against the knowledge base: what the router's confidence needs to tell a
confidently wrong answer from a right one.

A 135M model cannot see from its own token probabilities that it is wrong (on human-written questions
its generation signals separated right from wrong answers no better than chance, AUC 0.53). When the
knowledge base holds a passage close to the question, the answer can be compared with it: one that says
what the passage says is likelier right than one that says something else. The check also tells the
router whether a specialist would have grounds at all: a passage above the similarity floor.

One search serves the turn: the specialist, if the router escalates, answers from the same hits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from pz2.data.glossary import expand_query
from pz2.knowledge.documents import categories_of
from pz2.knowledge.index import lexical_tokens

if TYPE_CHECKING:  # the confidence model reads Check without loading the encoder's torch
    from pz2.knowledge.retrieval import Retriever, Search

HIDDEN_EXTRA = 20   # more hits searched when some are hidden, so that the closest one left is found
CHECK_FEATURES = ("checked", "kb_similarity", "kb_agreement", "kb_support", "kb_covers")


@dataclass(frozen=True)
class Check:
    similarity: float        # the closest passage's cosine to the question
    agreement: float         # cosine of the answer and that passage: SemScore against it
    support: float           # share of the answer's own words (stemmed, not the question's) found in that passage
    covers: bool             # that passage's document holds knowledge of the question's category
    grounds: bool            # that passage is a source a specialist would use (`Retriever.sources`): escalating has something to stand on
    ms: float
    path: str                # the closest passage's document ("" when the index is empty)
    search: Search = field(repr=False, compare=False)

    def features(self) -> list[float]:
        """CHECK_FEATURES of a turn that was checked."""
        return [1.0, self.similarity, self.agreement, self.support, float(self.covers)]

    def record(self) -> dict:
        """The check as the routing record shows it."""
        return {"similarity": round(self.similarity, 4), "agreement": round(self.agreement, 4),
                "support": round(self.support, 4), "covers": self.covers, "grounds": self.grounds,
                "ms": round(self.ms, 2), "passage": self.path}


UNCHECKED: list[float] = [0.0] * len(CHECK_FEATURES)


def support(answer: str, question: str, passage: str, stemmer: object) -> float:
    """Share of the answer's content words that the passage also has, leaving out the words the answer
    took from the question (repeating the question proves nothing)."""
    a, q, p = (set(t) for t in lexical_tokens([answer, question, passage], stemmer))
    own = a - q
    return len(own & p) / len(own) if own else 0.0


def search_without(retriever: Retriever, question: str, hide: Callable[[str], bool] | None,
                   vector: np.ndarray | None = None) -> Search:
    """The question's search (`top_k` hits) without the passages `hide` picks (by text): searched deeper
    so that the closest passages left are found."""
    k = retriever.cfg.top_k
    found = retriever.search(question, k=k + HIDDEN_EXTRA if hide else k, vector=vector)
    return replace(found, hits=[h for h in found.hits if not hide(h.chunk.text)][:k]) if hide else found


def check(retriever: Retriever, question: str, answer: str, category: str,
          hide: Callable[[str], bool] | None = None) -> Check:
    """Search the question (its vector encoded with the answer's, one pass of the encoder) and compare the
    answer with the closest passage found. `hide`: passages (by text) the search must not return — the
    confidence fit checks each answer a second time without the passages that state the question or its
    answer, as for a question the knowledge base does not cover."""
    start = time.perf_counter()
    q, a = retriever.encoder.embed([expand_query(question), answer])
    found = search_without(retriever, question, hide, q)
    if not found.hits:
        return Check(0.0, 0.0, 0.0, False, False, (time.perf_counter() - start) * 1000, "", found)
    best = max(found.hits, key=lambda h: h.similarity)
    index = retriever.index
    agreement = float(np.clip(index.embeddings[best.row] @ a, -1.0, 1.0))
    share = support(answer, question, f"{best.chunk.title}\n{best.chunk.text}", index.stemmer)
    return Check(best.similarity, agreement, share, category in categories_of(best.chunk.path),
                 bool(retriever.sources(question, [best])), (time.perf_counter() - start) * 1000,
                 best.chunk.path, found)
