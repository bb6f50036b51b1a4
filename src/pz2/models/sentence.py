"""Sentence embeddings as sentence-transformers computes them, read with plain transformers.

The embedded all-MiniLM-L6-v2 mean-pools its token vectors (`1_Pooling`); an encoder of your own
(`encoder_model`, `knowledge.encoder_model`: any local sentence-transformers folder, e.g. a
multilingual one) pools as its `1_Pooling/config.json` says, mean or CLS token, and reads up to
its `max_seq_length`. Every vector is L2-normalised, so a cosine of two embeddings is their dot product.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pz2.config import EMBEDDED, ModelConfig
from pz2.errors import ModelError
from pz2.models.artifacts import load_tokenizer, pretrained
from pz2.models.prepare import resolve_encoder

# all-MiniLM-L6-v2 was trained on 128-token inputs, though its sentence_bert_config.json allows 256
EMBEDDED_MAX_LENGTH = 128


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of the token vectors that are not padding: all-MiniLM-L6-v2's sentence embedding."""
    m = mask.unsqueeze(-1).to(hidden.dtype)                     # (B, T, 1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)      # (B, H)


def _pooling(folder: Path) -> str:
    """`mean` or `cls`, from the folder's sentence-transformers pooling config (mean when it has none)."""
    config = folder / "1_Pooling" / "config.json"
    if not config.is_file():
        return "mean"
    modes = {k.removeprefix("pooling_mode_").removesuffix("_token").removesuffix("_tokens")
             for k, on in json.loads(config.read_text()).items() if k.startswith("pooling_mode_") and on}
    if modes in ({"mean"}, {"cls"}):
        return modes.pop()
    raise ModelError(f"{config}: pooling {sorted(modes)}; pz2 reads encoders that pool by mean or by CLS token")


def _max_length(folder: Path, default: int) -> int:
    config = folder / "sentence_bert_config.json"
    return int(json.loads(config.read_text()).get("max_seq_length", default)) if config.is_file() else default


class SentenceEncoder:
    def __init__(self, model: Any, tokenizer: Any, name: str = EMBEDDED, pooling: str = "mean",
                 max_length: int = EMBEDDED_MAX_LENGTH) -> None:
        """`name`: the setting it was loaded from, which the knowledge base records."""
        self.model, self.tokenizer = model.eval(), tokenizer
        self.name, self.pooling, self.max_length = name, pooling, max_length

    @classmethod
    def load(cls, cfg: ModelConfig, name: str | None = None, key: str = "encoder_model") -> SentenceEncoder:
        """The encoder of a setting: `name` (default `encoder_model`, the classifier's and SemScore's)."""
        from transformers import AutoModel

        name = cfg.encoder_model if name is None else name
        path = resolve_encoder(cfg, name, key)
        fix = f"check {key} in model_config.yaml"
        folder = Path(path)
        max_length = EMBEDDED_MAX_LENGTH if name == EMBEDDED else _max_length(folder, EMBEDDED_MAX_LENGTH)
        return cls(pretrained(AutoModel.from_pretrained, path, "encoder", fix, use_safetensors=True),
                   load_tokenizer(path, fix), name, _pooling(folder), max_length)

    @classmethod
    def for_knowledge(cls, cfg: ModelConfig, shared: SentenceEncoder | None = None) -> SentenceEncoder:
        """The knowledge base's encoder (`knowledge.encoder_model`, empty: `encoder_model`); `shared`, the
        `encoder_model` one when already loaded, serves when the two are the same."""
        name = knowledge_encoder_name(cfg)
        if name == cfg.encoder_model:
            return shared or cls.load(cfg)
        return cls.load(cfg, name, "knowledge.encoder_model")

    @property
    def dim(self) -> int:
        return self.model.config.hidden_size

    def embed(self, texts: list[str], batch_size: int = 64,
              progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """(N, dim) unit vectors, in the order of `texts`; an empty text embeds like its special tokens alone.
        Texts are batched longest first, as sentence-transformers does: a batch is padded to its longest text,
        and a knowledge base mixes one-line glosses with page-long sections. `progress(done, total)` is called
        after each batch (a knowledge base of 30,000 passages takes minutes)."""
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for i in range(0, len(texts), batch_size):
                rows = order[i : i + batch_size]
                batch = self.tokenizer([texts[r] for r in rows], padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="pt")
                hidden = self.model(**batch).last_hidden_state
                pooled = hidden[:, 0] if self.pooling == "cls" else mean_pool(hidden, batch["attention_mask"])
                out[rows] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
                if progress is not None:
                    progress(i + len(rows), len(texts))
        return out


def knowledge_encoder_name(cfg: ModelConfig) -> str:
    """The encoder setting the knowledge base is built and searched with."""
    return cfg.knowledge.encoder_model or cfg.encoder_model
