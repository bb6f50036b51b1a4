"""The knowledge index: dense vectors in FAISS, BM25 in bm25s, fused by reciprocal rank.

Dense (MiniLM cosine) finds a passage in other words; BM25 finds the exact command, error
message or name that an embedding blurs. Reciprocal rank fusion (Cormack et al. 2009) needs no
score calibration between the two: a passage's score is sum(1 / (60 + rank)) over the lists
it appears in. Both libraries save to and load from a folder; the folder is written whole
or not at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pz2.data.jsonl import read_jsonl
from pz2.errors import ModelError
from pz2.fileio import atomic_write_json
from pz2.knowledge.chunking import Chunk

RRF_K = 60
CHUNKS, EMBEDDINGS, DENSE, LEXICAL, MANIFEST = "chunks.jsonl", "embeddings.npy", "dense.faiss", "bm25", "manifest.json"


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float        # fused (reciprocal rank) score: what the order follows
    similarity: float   # cosine of query and passage embeddings: what the floor applies to
    lexical: float      # BM25 score (0 = no query term in the passage)
    row: int = -1       # the passage's row in the index (its stored embedding)


def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


def lexical_tokens(texts: list[str], stemmer: Any) -> list[list[str]]:
    """Lower-cased, English-stopword-free, Snowball-stemmed words, as bm25s indexes them."""
    import bm25s

    return bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False)


class KnowledgeIndex:
    def __init__(self, chunks: list[Chunk], embeddings: np.ndarray, dense: Any, lexical: Any, manifest: dict) -> None:
        self.chunks, self.embeddings, self.dense, self.lexical, self.manifest = chunks, embeddings, dense, lexical, manifest
        self.stemmer = _stemmer()

    @classmethod
    def create(cls, chunks: list[Chunk], embeddings: np.ndarray, manifest: dict) -> KnowledgeIndex:
        import bm25s
        import faiss

        dense = faiss.IndexFlatIP(embeddings.shape[1])
        dense.add(np.ascontiguousarray(embeddings, dtype=np.float32))
        lexical = bm25s.BM25()
        tokens = lexical_tokens([f"{c.title}\n{c.text}" for c in chunks], _stemmer())
        lexical.index([t or ["\u2205"] for t in tokens], show_progress=False)
        return cls(chunks, embeddings, dense, lexical, manifest)

    def save(self, folder: Path) -> None:
        """Into `folder`, which the caller makes atomic (fileio.atomic_directory)."""
        import faiss

        with (folder / CHUNKS).open("w", encoding="utf-8") as f:
            for c in self.chunks:
                f.write(json.dumps(c.to_dict(), ensure_ascii=False) + "\n")
        np.save(folder / EMBEDDINGS, self.embeddings.astype(np.float32))
        faiss.write_index(self.dense, str(folder / DENSE))
        self.lexical.save(str(folder / LEXICAL))
        atomic_write_json(folder / MANIFEST, self.manifest)

    @classmethod
    def load(cls, folder: Path) -> KnowledgeIndex:
        import bm25s
        import faiss

        if not (folder / MANIFEST).is_file():
            raise ModelError(f"{folder}: no knowledge base yet; build it with `pz2 kb build`")
        try:
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
            chunks = [Chunk(**row) for row in read_jsonl(folder / CHUNKS)]
            embeddings = np.load(folder / EMBEDDINGS)
            dense = faiss.read_index(str(folder / DENSE))
            lexical = bm25s.BM25.load(str(folder / LEXICAL))
        except Exception as e:  # noqa: BLE001 - any unreadable part means the same thing to the user
            raise ModelError(f"{folder}: the knowledge base is damaged ({type(e).__name__}: {e}); "
                             "rebuild it with `pz2 kb build`") from None
        if not (len(chunks) == embeddings.shape[0] == dense.ntotal):
            raise ModelError(f"{folder}: chunks, embeddings and index disagree in size; rebuild with `pz2 kb build`")
        return cls(chunks, embeddings, dense, lexical, manifest)

    def __len__(self) -> int:
        return len(self.chunks)

    def search(self, query_vector: np.ndarray, query: str, k: int, candidates: int = 50) -> list[Hit]:
        """The `k` best passages for a query: top `candidates` of each list, fused by rank."""
        if not self.chunks:
            return []
        n = min(candidates, len(self.chunks))
        q = np.ascontiguousarray(query_vector.reshape(1, -1), dtype=np.float32)
        _, dense_ids = self.dense.search(q, n)
        lexical_scores = np.zeros(len(self.chunks), dtype=np.float32)
        tokens = lexical_tokens([query], self.stemmer)[0]
        if tokens:
            lexical_scores = self.lexical.get_scores(tokens)
        lexical_ids = [i for i in np.argsort(-lexical_scores, kind="stable")[:n] if lexical_scores[i] > 0]
        fused: dict[int, float] = {}
        for ranking in (dense_ids[0].tolist(), lexical_ids):
            for rank, i in enumerate(ranking):
                if i >= 0:
                    fused[int(i)] = fused.get(int(i), 0.0) + 1.0 / (RRF_K + rank + 1)
        best = sorted(fused, key=lambda i: (-fused[i], i))[:k]
        sims = self.embeddings[best] @ q[0]
        return [Hit(self.chunks[i], round(fused[i], 6), round(float(s), 4), round(float(lexical_scores[i]), 4), i)
                for i, s in zip(best, sims)]
