"""Embedding a knowledge base's passages longest-first (`SentenceEncoder.embed`) against the order they come in,
batches of 64 either way, in one process: a batch is padded to its longest text, and the built-in collections
mix 160-character command examples with 1,200-character sections. Same vectors (checked), less padding.

    python benchmarks/embed_order.py                       # the default collections (about 4,300 passages)
    python benchmarks/embed_order.py --collections wordnet # or any of knowledge.collections
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "embed_order.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collections", nargs="*", help="default: knowledge.collections' default")
    args = parser.parse_args()
    import numpy as np
    import torch

    from pz2.config import KnowledgeConfig, ModelConfig, TrainingConfig
    from pz2.knowledge.chunking import chunk_document
    from pz2.knowledge.documents import builtin_documents
    from pz2.models.sentence import SentenceEncoder, mean_pool

    cfg = KnowledgeConfig() if args.collections is None else KnowledgeConfig(collections=args.collections)
    docs = builtin_documents(cfg.collections, TrainingConfig())
    texts = [f"{c.title}\n{c.text}" for d in docs for c in chunk_document(d, d.passage_chars or cfg.chunk_chars)]
    encoder = SentenceEncoder.load(ModelConfig())

    def in_order() -> np.ndarray:   # the batching `embed` did before: the texts' own order
        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), 64):
                batch = encoder.tokenizer(texts[i:i + 64], padding=True, truncation=True,
                                          max_length=encoder.max_length, return_tensors="pt")
                pooled = mean_pool(encoder.model(**batch).last_hidden_state, batch["attention_mask"])
                out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(out)

    start = time.perf_counter()
    baseline = in_order()
    baseline_s = time.perf_counter() - start
    start = time.perf_counter()
    sorted_vectors = encoder.embed(texts)
    sorted_s = time.perf_counter() - start
    gap = float(np.abs(baseline - sorted_vectors).max())
    results = {"collections": cfg.collections, "passages": len(texts), "in_order_s": round(baseline_s, 1),
               "longest_first_s": round(sorted_s, 1), "speed-up": round(baseline_s / sorted_s, 2),
               "max_abs_difference": gap}
    print(json.dumps(results, indent=2))
    assert gap < 1e-4, "the two orders must give the same vectors"
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
