"""Sentence embeddings from the embedded all-MiniLM-L6-v2: mean-pooled, L2-normalised token vectors.

This is the encoder as sentence-transformers publishes it (`1_Pooling`: mean, then `Normalize`),
read with plain transformers, so a cosine of two embeddings is the usual sentence similarity.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pz2.config import ModelConfig
from pz2.models.artifacts import load_tokenizer, pretrained
from pz2.models.prepare import resolve_encoder


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of the token vectors that are not padding: all-MiniLM-L6-v2's sentence embedding."""
    m = mask.unsqueeze(-1).to(hidden.dtype)                     # (B, T, 1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)      # (B, H)


class SentenceEncoder:
    # the model was trained on 128-token inputs (its sentence_bert_config.json)
    max_length = 128

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model, self.tokenizer = model.eval(), tokenizer

    @classmethod
    def load(cls, cfg: ModelConfig) -> SentenceEncoder:
        from transformers import AutoModel

        path = resolve_encoder(cfg)
        fix = "check encoder_model in model_config.yaml"
        return cls(pretrained(AutoModel.from_pretrained, path, "encoder", fix, use_safetensors=True),
                   load_tokenizer(path, fix))

    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """(N, 384) unit vectors; an empty text embeds like its special tokens alone."""
        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), batch_size):
                batch = self.tokenizer(texts[i : i + batch_size], padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="pt")
                hidden = self.model(**batch).last_hidden_state
                out.append(torch.nn.functional.normalize(mean_pool(hidden, batch["attention_mask"]), dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, self.model.config.hidden_size), dtype=np.float32)
