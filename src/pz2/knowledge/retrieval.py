"""Question -> the passages a specialist answers from: encode, search, keep what clears the floor."""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from pz2.config import EMBEDDED, ModelConfig, RetrievalConfig
from pz2.data.glossary import expand_query
from pz2.errors import ModelError
from pz2.knowledge.documents import DICTIONARIES
from pz2.knowledge.grounding import Grounded, Passage, fit_passages, grounded_message
from pz2.knowledge.index import Hit, KnowledgeIndex, lexical_tokens
from pz2.models.sentence import SentenceEncoder

logger = logging.getLogger(__name__)

# Hits searched for the dictionary rule (`Retriever.search`): a document passage this far down still counts.
DICTIONARY_WINDOW = 10
# Interrogatives, auxiliaries and pronouns beyond BM25's short stop list: how a question asks, not what about.
QUESTION_WORDS = ("what", "which", "who", "whom", "whose", "when", "where", "why", "how", "do", "does", "did", "can",
                  "could", "would", "should", "shall", "may", "might", "must", "has", "have", "had", "were", "been",
                  "am", "i", "me", "my", "you", "your", "we", "our", "he", "she", "his", "her", "its", "them", "from",
                  "about", "than", "so", "some", "any", "there", "here", "tell", "please")


@dataclass(frozen=True)
class Search:
    """A search's hits, best first, and its time (encoding the query included), returned together: two
    requests searching at once each get their own."""

    hits: list[Hit]
    ms: float


class Retriever:
    def __init__(self, index: KnowledgeIndex, encoder: SentenceEncoder, cfg: RetrievalConfig) -> None:
        self.index, self.encoder, self.cfg = index, encoder, cfg

    @classmethod
    def load(cls, folder: Path, model_cfg: ModelConfig, encoder: SentenceEncoder | None = None) -> Retriever:
        """`encoder`: the knowledge base's (`SentenceEncoder.for_knowledge`) when the caller has it loaded.
        An index built with another encoder is refused: its vectors and the query's would not compare."""
        index = KnowledgeIndex.load(folder)
        encoder = encoder or SentenceEncoder.for_knowledge(model_cfg)
        built = index.manifest.get("encoder", EMBEDDED)
        if built != encoder.name or index.embeddings.shape[1] != encoder.dim:
            raise ModelError(f"{folder}: the knowledge base was built with the encoder `{built}` "
                              f"({index.embeddings.shape[1]} dimensions), and knowledge.encoder_model is now "
                              f"`{encoder.name}` ({encoder.dim}): rebuild it with `pz2 kb build`")
        return cls(index, encoder, model_cfg.runtime.retrieval)

    def search(self, query: str, k: int | None = None, vector: np.ndarray | None = None) -> Search:
        """`vector`: the embedding of `expand_query(query)` when the caller has it (encoded in one batch with
        other text). A Korean question is searched with the English of its glossary words too (data/glossary.py):
        the encoder and the index read English."""
        start = time.perf_counter()
        query = expand_query(query)
        vector = self.encoder.embed([query])[0] if vector is None else vector
        k = k or self.cfg.top_k
        hits = self.index.search(vector, query, max(k, DICTIONARY_WINDOW), self.cfg.candidates)
        return Search(self._documents_first(hits)[:k], (time.perf_counter() - start) * 1000)

    def _documents_first(self, hits: list[Hit]) -> list[Hit]:
        """When a document passage among the hits is a sure source (`sure_similarity`), dictionary glosses go
        after all the documents' hits: the gloss is the fallback, for what no document holds. Chosen on the
        authors' held-out questions and `pz2 eval kb`'s (README: the wordnet collection)."""
        if not any(h.chunk.collection not in DICTIONARIES and h.similarity >= self.cfg.sure_similarity for h in hits):
            return hits
        return sorted(hits, key=lambda h: h.chunk.collection in DICTIONARIES)

    @cached_property
    def _words(self) -> tuple[Counter[str], list[frozenset[str]], frozenset[str]]:
        """Each passage's words (title and text, as BM25 reads them), how many passages hold each word, and the
        stemmed QUESTION_WORDS; counted once, at the first question (0.2 s for 4,000 passages)."""
        words = [frozenset(t) for t in lexical_tokens([f"{c.title}\n{c.text}" for c in self.index.chunks],
                                                      self.index.stemmer)]
        asking = frozenset(lexical_tokens([" ".join(QUESTION_WORDS)], self.index.stemmer)[0])
        return Counter(w for ws in words for w in ws), words, asking

    def specific_word(self, question: str) -> str | None:
        """The question's word that the fewest passages hold (none: a word no passage holds), stemmed; the
        words that make it a question ("which", "does" ...) are no subject, whatever their count."""
        counts, _, asking = self._words
        words = [w for w in lexical_tokens([expand_query(question)], self.index.stemmer)[0] if w not in asking]
        return min(words, key=lambda w: counts.get(w, 0), default=None)

    def sources(self, question: str, hits: list[Hit]) -> list[Hit]:
        """The hits a specialist may answer from: similar enough to the question, and, below `sure_similarity`,
        holding its most specific word. Chosen on the authors' held-out questions with `pz2 eval kb`'s own kept
        (not on the general-knowledge set it is reported on; `benchmarks/source_rule.py`): of 45 held-out
        questions whose first hit holds the answer 31 keep it, of 125 whose first hit does not 24 do (with the
        floor 0.35 alone: 40 and 54)."""
        close = [h for h in hits if h.similarity >= self.cfg.min_similarity]
        if all(h.similarity >= self.cfg.sure_similarity for h in close):
            return close
        word = self.specific_word(question)
        _, words, _ = self._words
        return [h for h in close if h.similarity >= self.cfg.sure_similarity or (word is not None and word in words[h.row])]

    def ground(self, question: str, tokenizer: Any, room: int | None = None, found: Search | None = None,
               reply_in: str | None = None) -> Grounded:
        """The one way a question is grounded, for the assistant and `pz2 eval kb` alike: the top-k hits above
        `min_similarity`, numbered from 1 in rank order, cut to the token budget and to `room` (tokens the
        engine's context has left for passages), in the specialist's user turn. `found`: this question's
        search when it already ran (the check of the unified answer), so a turn searches once; `reply_in`: the
        language the answer is asked in (`grounded_message`)."""
        found = found or self.search(question)
        hits = self.sources(question, found.hits)
        passages = [Passage(n, h.chunk.path, h.chunk.title, h.chunk.text, h.chunk.line_start, h.chunk.line_end,
                            h.score, h.similarity) for n, h in enumerate(hits, start=1)]
        budget = self.cfg.max_passage_tokens if room is None else min(room, self.cfg.max_passage_tokens)
        passages = fit_passages(passages, tokenizer, budget)
        return Grounded(grounded_message(question, passages, reply_in), passages, round(found.ms, 2))
