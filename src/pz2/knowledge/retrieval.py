"""Question -> the passages a specialist answers from: encode, search, keep what clears the floor."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from pz2.config import ModelConfig, RetrievalConfig
from pz2.knowledge.grounding import Passage, fit_passages, grounded_message
from pz2.knowledge.index import Hit, KnowledgeIndex
from pz2.models.sentence import SentenceEncoder

logger = logging.getLogger(__name__)


class Retriever:
    def __init__(self, index: KnowledgeIndex, encoder: SentenceEncoder, cfg: RetrievalConfig) -> None:
        self.index, self.encoder, self.cfg = index, encoder, cfg
        self.last_ms = 0.0

    @classmethod
    def load(cls, folder: Path, model_cfg: ModelConfig, encoder: SentenceEncoder | None = None) -> Retriever:
        index = KnowledgeIndex.load(folder)
        return cls(index, encoder or SentenceEncoder.load(model_cfg), model_cfg.runtime.retrieval)

    def search(self, query: str, k: int | None = None) -> list[Hit]:
        start = time.perf_counter()
        vector = self.encoder.embed([query])[0]
        hits = self.index.search(vector, query, k or self.cfg.top_k, self.cfg.candidates)
        self.last_ms = (time.perf_counter() - start) * 1000
        return hits

    def passages(self, query: str) -> list[Passage]:
        """The top-k hits above `min_similarity`, numbered from 1 in rank order."""
        hits = [h for h in self.search(query) if h.similarity >= self.cfg.min_similarity]
        return [Passage(n, h.chunk.path, h.chunk.title, h.chunk.text, h.chunk.line_start, h.chunk.line_end,
                        h.score, h.similarity) for n, h in enumerate(hits, start=1)]

    def ground(self, question: str, tokenizer: Any, room: int | None = None) -> tuple[str, list[Passage]]:
        """The specialist's user turn for `question` and the passages in it, within the token budget
        and within `room` (tokens the engine's context has left for passages)."""
        budget = self.cfg.max_passage_tokens if room is None else min(room, self.cfg.max_passage_tokens)
        passages = fit_passages(self.passages(question), tokenizer, budget)
        return grounded_message(question, passages), passages
