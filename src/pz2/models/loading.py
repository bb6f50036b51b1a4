"""Load a trained model for generation: the base, optionally with a LoRA adapter, or a full model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pz2.config import ModelConfig
from pz2.errors import ModelError
from pz2.models.base import load_base


def adapter_dir(path: Path) -> Path | None:
    """The LoRA adapter in `path`: the folder itself, or its `adapter/` (models/unified_model/adapter)."""
    for candidate in (path, path / "adapter"):
        if (candidate / "adapter_config.json").exists():
            return candidate
    return None


def load_for_generation(model_cfg: ModelConfig, path: Path | None) -> tuple[Any, Any]:
    """(model, tokenizer): the base when `path` is None; base + adapter; or a full model directory."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if path is None:
        return load_base(model_cfg)
    if not path.exists():
        raise ModelError(f"{path}: no such model folder; train it first (`pz2 train unified` / `pz2 train specialist`)")
    adapter = adapter_dir(path)
    if adapter is not None:
        from peft import PeftModel

        base, _ = load_base(model_cfg)
        return PeftModel.from_pretrained(base, adapter).eval(), AutoTokenizer.from_pretrained(adapter)
    if (path / "config.json").exists():
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, use_safetensors=True,
                                                     trust_remote_code=model_cfg.trust_remote_code)
        return model.eval(), AutoTokenizer.from_pretrained(path)
    raise ModelError(f"{path}: neither a LoRA adapter (adapter_config.json) nor a model (config.json)")
