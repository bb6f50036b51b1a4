"""`pz2 kb build`: documents -> passages -> embeddings -> index, reusing what has not changed.

Embedding is the slow part (MiniLM on every passage), so a rebuild keeps the passages and
vectors of every document whose content hash, chunking settings and encoder are unchanged, and
embeds only new or edited documents; the FAISS and BM25 indexes are rebuilt whole (milliseconds).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pz2.config import KnowledgeConfig, TrainingConfig
from pz2.errors import ModelError
from pz2.fileio import atomic_directory
from pz2.knowledge.chunking import Chunk, chunk_document
from pz2.knowledge.documents import COLLECTIONS, Document, Skipped, builtin_documents, user_documents
from pz2.knowledge.index import MANIFEST, KnowledgeIndex
from pz2.models.sentence import SentenceEncoder

logger = logging.getLogger(__name__)


@dataclass
class BuildReport:
    folder: Path
    documents: int = 0
    chunks: int = 0
    embedded: int = 0          # passages embedded this run (the rest were reused)
    reused_documents: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    by_collection: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def _doc_hash(doc: Document, cfg: KnowledgeConfig, encoder_id: str) -> str:
    key = json.dumps([doc.title, doc.split, doc.passage_chars or cfg.chunk_chars, cfg.overlap, encoder_id],
                     ensure_ascii=False)
    return hashlib.sha256(f"{key}\0{doc.text}".encode()).hexdigest()


def _previous(folder: Path) -> tuple[dict[str, str], dict[str, list[tuple[Chunk, np.ndarray]]]]:
    """(document path -> hash, document path -> its passages and vectors) of the index on disk, if any."""
    if not (folder / MANIFEST).is_file():
        return {}, {}
    try:
        old = KnowledgeIndex.load(folder)
    except ModelError as e:  # a damaged index is rebuilt from scratch, not a reason to stop
        logger.warning("%s; rebuilding every document", e)
        return {}, {}
    by_doc: dict[str, list[tuple[Chunk, np.ndarray]]] = {}
    for chunk, vector in zip(old.chunks, old.embeddings, strict=True):
        by_doc.setdefault(chunk.path, []).append((chunk, vector))
    return {p: d["sha256"] for p, d in old.manifest.get("documents", {}).items()}, by_doc


def build_knowledge(folder: Path, cfg: KnowledgeConfig, training: TrainingConfig, encoder: SentenceEncoder,
                    paths: list[Path] | None = None, progress: Callable[[int, int], None] | None = None) -> BuildReport:
    """Index the configured collections and user documents (plus `paths`) into `folder` with `encoder`
    (`SentenceEncoder.for_knowledge`), whose setting the manifest records; `progress(embedded, to_embed)`
    follows the embedding, nearly all of a build's time."""
    start = time.perf_counter()
    report = BuildReport(folder)
    docs = builtin_documents(cfg.collections, training)
    user, report.skipped = user_documents([*cfg.paths, *(paths or [])], cfg)
    docs += user
    for s in report.skipped:
        logger.warning("skipped %s: %s", s.path, s.reason)
    unique: dict[str, Document] = {}
    for d in docs:  # a file given twice (in knowledge.paths and on the command line) is indexed once
        unique.setdefault(d.path, d)
    docs = list(unique.values())
    old_hashes, old_chunks = _previous(folder)

    chunks: list[Chunk] = []
    vectors: list[np.ndarray] = []
    fresh: list[int] = []      # positions in `chunks` still to embed
    documents: dict[str, dict] = {}
    for doc in docs:
        digest = _doc_hash(doc, cfg, encoder.name)
        before = len(chunks)
        if old_hashes.get(doc.path) == digest and doc.path in old_chunks:
            report.reused_documents += 1
            for chunk, vector in old_chunks[doc.path]:
                chunks.append(chunk)
                vectors.append(vector)
        else:
            for chunk in chunk_document(doc, doc.passage_chars or cfg.chunk_chars, cfg.overlap):
                fresh.append(len(chunks))
                chunks.append(chunk)
                vectors.append(np.zeros(0, dtype=np.float32))
        documents[doc.path] = {"sha256": digest, "title": doc.title, "collection": doc.collection,
                               "chunks": len(chunks) - before}
    if fresh:
        logger.info("embedding %d new passages (%d documents reused)", len(fresh), report.reused_documents)
        embedded = encoder.embed([f"{chunks[i].title}\n{chunks[i].text}" for i in fresh], progress=progress)
        for i, vector in zip(fresh, embedded):
            vectors[i] = vector
    dim = encoder.dim
    matrix = np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, dim), dtype=np.float32)
    collections = Counter(c.collection for c in chunks)
    manifest = {
        "version": 1, "built": time.strftime("%Y-%m-%dT%H:%M:%S"), "encoder": encoder.name, "encoder_dim": dim,
        "chunk_chars": cfg.chunk_chars, "overlap": cfg.overlap, "chunks": len(chunks),
        "collections": {name: {"chunks": collections.get(name, 0), "what": what, "licence": licence}
                        for name, (what, licence) in {**COLLECTIONS, "user": ("your documents", "yours")}.items()
                        if collections.get(name)},
        "documents": documents,
        "skipped": [{"path": s.path, "reason": s.reason} for s in report.skipped],
    }
    index = KnowledgeIndex.create(chunks, matrix, manifest)
    manifest["build_seconds"] = round(time.perf_counter() - start, 2)
    with atomic_directory(folder) as tmp:
        index.save(tmp)
    report.documents, report.chunks, report.embedded = len(docs), len(chunks), len(fresh)
    report.by_collection = dict(collections)
    report.seconds = round(time.perf_counter() - start, 2)
    return report
