"""Question -> the passages a specialist answers from: encode, search, keep what clears the floor."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pz2.config import EMBEDDED, ModelConfig, RetrievalConfig
from pz2.data.glossary import expand_query
from pz2.errors import ModelError
from pz2.knowledge.grounding import Grounded, Passage, fit_passages, grounded_message
from pz2.knowledge.index import Hit, KnowledgeIndex
from pz2.models.sentence import SentenceEncoder

logger = logging.getLogger(__name__)


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
        hits = self.index.search(vector, query, k or self.cfg.top_k, self.cfg.candidates)
        return Search(hits, (time.perf_counter() - start) * 1000)

    def ground(self, question: str, tokenizer: Any, room: int | None = None, found: Search | None = None,
               reply_in: str | None = None) -> Grounded:
        """The one way a question is grounded, for the assistant and `pz2 eval kb` alike: the top-k hits above
        `min_similarity`, numbered from 1 in rank order, cut to the token budget and to `room` (tokens the
        engine's context has left for passages), in the specialist's user turn. `found`: this question's
        search when it already ran (the check of the unified answer), so a turn searches once; `reply_in`: the
        language the answer is asked in (`grounded_message`)."""
        found = found or self.search(question)
        hits = [h for h in found.hits if h.similarity >= self.cfg.min_similarity]
        passages = [Passage(n, h.chunk.path, h.chunk.title, h.chunk.text, h.chunk.line_start, h.chunk.line_end,
                            h.score, h.similarity) for n, h in enumerate(hits, start=1)]
        budget = self.cfg.max_passage_tokens if room is None else min(room, self.cfg.max_passage_tokens)
        passages = fit_passages(passages, tokenizer, budget)
        return Grounded(grounded_message(question, passages, reply_in), passages, round(found.ms, 2))
