"""Loss and perplexity of a model on reference answers: how likely it finds the right answer.

Teacher forcing in transformers (on the engine's device and dtype, the softmax in float32), with the prompt built and masked exactly as in
training (`models.chat.encode_example`): the loss is on the answer's tokens only. The GGUF the
llama.cpp engine serves de-quantizes to these same weights, so the figure holds for it too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pz2.config import ModelConfig
from pz2.models.chat import IGNORE_INDEX, ChatExample, encode_example
from pz2.models.loading import load_trained


@dataclass(frozen=True)
class Loss:
    nll: float        # summed over the answer's tokens
    tokens: int


def reference_losses(cfg: ModelConfig, model_path: Path | None, examples: Sequence[ChatExample],
                     max_length: int = 512) -> list[Loss]:
    """Per example, the model's summed negative log-likelihood of the answer and its token count."""
    import torch

    model, tokenizer = load_trained(cfg, model_path)
    out = []
    with torch.inference_mode():
        for ex in examples:
            enc = encode_example(tokenizer, ex, max_length)
            if enc is None:
                out.append(Loss(0.0, 0))
                continue
            ids = torch.tensor([enc["input_ids"]], device=model.device)
            labels = torch.tensor(enc["labels"][1:], device=model.device)   # (T-1,): position t predicts t+1
            logits = model(input_ids=ids).logits[0, :-1].float()        # (T-1, V)
            keep = labels != IGNORE_INDEX
            nll = torch.nn.functional.cross_entropy(logits[keep], labels[keep], reduction="sum")
            out.append(Loss(float(nll), int(keep.sum())))
    return out


def summarize_losses(losses: Sequence[Loss]) -> dict[str, float | int | None]:
    """Token-weighted mean loss and its perplexity."""
    tokens = sum(x.tokens for x in losses)
    if not tokens:
        return {"loss": None, "perplexity": None, "tokens": 0}
    mean = sum(x.nll for x in losses) / tokens
    return {"loss": mean, "perplexity": math.exp(mean), "tokens": tokens}
