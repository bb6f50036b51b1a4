"""Which index library: FAISS + bm25s (pz2's) against Qdrant's client in local mode, same passages.

Both get the passages and MiniLM vectors of the built knowledge base (`pz2 kb build` first).
Measured in one process: time to build each index, query latency p50/p95 over the 48 held-out
questions of `pz2 eval kb` (dense search; dense + lexical fused), and whether each finds the
expected document in its top 3. Qdrant's lexical side is a sparse vector per passage (BM25 term
weights from the same stemmed tokens, IDF applied by Qdrant), fused by its own RRF query.

    pip install qdrant-client          # not a pz2 dependency: only this benchmark uses it
    python benchmarks/retrieval_backends.py
"""

from __future__ import annotations

import json
import statistics
import time
import zlib
from collections import Counter
from pathlib import Path

import numpy as np

from pz2.evaluation.grounded import GROUNDED_QUESTIONS, load_grounded
from pz2.knowledge.index import KnowledgeIndex, lexical_tokens
from pz2.models.sentence import SentenceEncoder
from pz2.workspace import Workspace

K1, B = 1.5, 0.75


def _term_id(token: str) -> int:
    return zlib.crc32(token.encode())


def _sparse(tokens: list[str], avg_len: float) -> tuple[list[int], list[float]]:
    """BM25's term-frequency part per term (Qdrant multiplies by IDF at query time)."""
    counts = Counter(tokens)
    norm = K1 * (1 - B + B * len(tokens) / avg_len)
    ids = sorted({_term_id(t): t for t in counts}.items())
    return [i for i, _ in ids], [counts[t] * (K1 + 1) / (counts[t] + norm) for _, t in ids]


def main() -> None:
    from qdrant_client import QdrantClient, models

    ws = Workspace(Path("finetuning"))
    cfg = ws.model_config()
    ours = KnowledgeIndex.load(ws.knowledge)
    encoder = SentenceEncoder.load(cfg)
    rows = load_grounded(GROUNDED_QUESTIONS)
    vectors = encoder.embed([r.question for r in rows])
    texts = [f"{c.title}\n{c.text}" for c in ours.chunks]

    start = time.perf_counter()
    KnowledgeIndex.create(ours.chunks, ours.embeddings, {})
    faiss_build = time.perf_counter() - start

    start = time.perf_counter()
    client = QdrantClient(":memory:")
    client.create_collection("kb", vectors_config={"dense": models.VectorParams(size=ours.embeddings.shape[1],
                                                                               distance=models.Distance.COSINE)},
                            sparse_vectors_config={"bm25": models.SparseVectorParams(modifier=models.Modifier.IDF)})
    tokens = lexical_tokens(texts, ours.stemmer)
    avg = statistics.mean(len(t) for t in tokens)
    points = []
    for i, (vector, toks) in enumerate(zip(ours.embeddings, tokens, strict=True)):
        ids, values = _sparse(toks, avg)
        points.append(models.PointStruct(id=i, vector={"dense": vector.tolist(),
                                                       "bm25": models.SparseVector(indices=ids, values=values)},
                                         payload={"path": ours.chunks[i].path}))
    client.upsert("kb", points)
    qdrant_build = time.perf_counter() - start

    def timed(search) -> tuple[list[float], float]:  # noqa: ANN001
        ms, found = [], 0
        for row, vector in zip(rows, vectors, strict=True):
            t = time.perf_counter()
            paths = search(row.question, vector)
            ms.append((time.perf_counter() - t) * 1000)
            found += row.source in paths[:3]
        return ms, found / len(rows)

    def faiss_dense(q: str, v: np.ndarray) -> list[str]:
        _, ids = ours.dense.search(v.reshape(1, -1).astype(np.float32), 3)
        return [ours.chunks[i].path for i in ids[0]]

    def faiss_fused(q: str, v: np.ndarray) -> list[str]:
        return [h.chunk.path for h in ours.search(v, q, 3)]

    def qdrant_dense(q: str, v: np.ndarray) -> list[str]:
        hits = client.query_points("kb", query=v.tolist(), using="dense", limit=3, with_payload=True).points
        return [h.payload["path"] for h in hits]

    def qdrant_fused(q: str, v: np.ndarray) -> list[str]:
        qt = lexical_tokens([q], ours.stemmer)[0]
        ids = sorted({_term_id(t) for t in qt})
        hits = client.query_points("kb", prefetch=[
            models.Prefetch(query=v.tolist(), using="dense", limit=50),
            models.Prefetch(query=models.SparseVector(indices=ids, values=[1.0] * len(ids)), using="bm25", limit=50)],
            query=models.FusionQuery(fusion=models.Fusion.RRF), limit=3, with_payload=True).points
        return [h.payload["path"] for h in hits]

    results = {"passages": len(ours.chunks), "build_s": {"faiss+bm25s": faiss_build, "qdrant local": qdrant_build}}
    for name, fn in (("faiss dense", faiss_dense), ("faiss+bm25s fused", faiss_fused),
                     ("qdrant local dense", qdrant_dense), ("qdrant local fused", qdrant_fused)):
        ms, recall = timed(fn)
        results[name] = {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)), "recall@3": recall}
        print(f"{name:22s} p50 {results[name]['p50_ms']:7.2f} ms  p95 {results[name]['p95_ms']:7.2f} ms  "
              f"recall@3 {recall:.2f}")
    print(f"build: faiss+bm25s {faiss_build:.2f} s, qdrant local {qdrant_build:.2f} s ({len(ours.chunks)} passages)")
    print(f"ratio qdrant/faiss fused p50: {results['qdrant local fused']['p50_ms'] / results['faiss+bm25s fused']['p50_ms']:.1f}x")
    out = Path("benchmarks/results/retrieval_backends.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
