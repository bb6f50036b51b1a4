"""Load the base model and talk to it through its own chat template."""

from __future__ import annotations

from typing import Any

from pz2.config import ModelConfig
from pz2.models.chat import prompt_ids
from pz2.models.prepare import resolve_base


def load_base(cfg: ModelConfig) -> tuple[Any, Any]:
    """The base causal LM (float32, eval mode) and its tokenizer, loaded offline from safetensors."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_base(cfg)
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=cfg.trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=torch.float32, use_safetensors=True, trust_remote_code=cfg.trust_remote_code
    )
    return model.eval(), tokenizer


def greedy_reply(model: Any, tokenizer: Any, system_prompt: str, user: str, max_new_tokens: int = 48) -> str:
    """Deterministic answer to one user turn, for smoke tests and reference comparisons."""
    import torch

    ids = torch.tensor([prompt_ids(tokenizer, system_prompt, user)])
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             do_sample=False, pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
    return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()
