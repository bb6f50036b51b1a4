"""Load the base model and talk to it through its own chat template."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pz2.config import ModelConfig
from pz2.models.artifacts import load_tokenizer, pretrained
from pz2.models.chat import prompt_ids
from pz2.models.prepare import resolve_base

if TYPE_CHECKING:
    from pz2.models.precision import Placement


def load_base(cfg: ModelConfig, path: Path | None = None, placement: Placement | None = None) -> tuple[Any, Any]:
    """The base causal LM (eval mode) and its tokenizer, loaded offline from safetensors on the engine's
    device and dtype (`placement`: elsewhere); `path`: another checkpoint of the base's architecture
    (the merged unified model)."""
    from pz2.models.precision import Placement

    path = path or resolve_base(cfg)
    fix = "check base_model in model_config.yaml"
    tokenizer = load_tokenizer(path, fix, trust_remote_code=cfg.trust_remote_code)
    return load_causal_lm(path, fix, placement or Placement.of(cfg.runtime.engine), cfg.trust_remote_code), tokenizer


def load_causal_lm(path: Path, fix: str, placement: Placement, trust_remote_code: bool) -> Any:
    """A full causal LM checkpoint in eval mode, on `placement`'s device in its dtype."""
    from transformers import AutoModelForCausalLM

    model = pretrained(AutoModelForCausalLM.from_pretrained, path, "model", fix, dtype=placement.dtype,
                       device_map=placement.device, use_safetensors=True, trust_remote_code=trust_remote_code)
    return model.eval()


def greedy_replies(model: Any, tokenizer: Any, prompts: list[tuple[str, str]], max_new_tokens: int = 48,
                   batch_size: int = 8) -> list[str]:
    """Greedy answers to (system prompt, user turn) pairs, several at a time.

    Left padding, so every answer starts at the same column; a batch of one has no padding. The batch
    goes to the model's device: on a GPU the whole batch decodes at once.
    """
    import torch

    answers: list[str] = []
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    for i in range(0, len(prompts), batch_size):
        ids = [prompt_ids(tokenizer, s, u) for s, u in prompts[i : i + batch_size]]
        width = max(map(len, ids))
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids])
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids])
        with torch.inference_mode():
            out = model.generate(input_ids=input_ids.to(model.device), attention_mask=mask.to(model.device),
                                 max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad)
        answers += [tokenizer.decode(row[width:], skip_special_tokens=True).strip() for row in out.cpu()]
    return answers


def greedy_reply(model: Any, tokenizer: Any, system_prompt: str, user: str, max_new_tokens: int = 48) -> str:
    """Deterministic answer to one user turn, for smoke tests and reference comparisons."""
    return greedy_replies(model, tokenizer, [(system_prompt, user)], max_new_tokens)[0]
