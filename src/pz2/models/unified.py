"""The unified model as served: its adapter merged into the base and written like the base.

An unmerged LoRA costs every token a pair of extra matrix products per layer and module (about
60 % of a Q4_0 answer's time here, benchmarks/engine_speed.py); merged, the most common route
decodes as fast as the bare base. Merging then quantizing changes the unified model slightly
(benchmarks/base_format.py measures it), so the specialists are trained as adapters on the merged
model's served values (the two-stage recipe: unified first, then each specialist continues from
it) and stay exact, with one model in memory for all three.

The merged model is cached by content: its folder is named by the adapter's and the base's hashes,
so retraining the unified model makes a new one, and the specialists trained on the old one are
refused as stale until retrained.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

from pz2.config import EMBEDDED, ModelConfig
from pz2.errors import ModelError
from pz2.fileio import atomic_directory, sha256_file
from pz2.models.embedded import BASE
from pz2.models.gguf_export import lora_weights
from pz2.models.loading import adapter_dir, check_trained_on
from pz2.models.prepare import GGUF_FILE, SOURCE_FILE, WEIGHTS_FILE, ServedModel, served_base, write_served

logger = logging.getLogger(__name__)


def served_model(cfg: ModelConfig, unified: Path | None) -> ServedModel:
    """What the engines serve and the specialists train on: the unified model once its adapter
    (`unified`) exists, the base before."""
    return served_unified(cfg, unified) if unified is not None and adapter_dir(unified) else served_base(cfg)


def unified_id(adapter: Path) -> str:
    return f"unified:{sha256_file(lora_weights(adapter))[:16]}"


def served_unified(cfg: ModelConfig, adapter: Path) -> ServedModel:
    """The unified model merged and written in `weights_format`, built once per (adapter, base)."""
    base = served_base(cfg)
    adapter = adapter_dir(adapter) or adapter
    name = unified_id(adapter)
    target = cfg.cache_dir.expanduser() / "unified" / f"{name.split(':')[1]}-{base.fingerprint['sha256'][:12]}-{cfg.weights_format}"
    try:
        recorded = json.loads((target / SOURCE_FILE).read_text())
        return ServedModel(target, target / GGUF_FILE if recorded["gguf"] else None,
                           {k: recorded[k] for k in ("id", "format", "sha256", "base")} | {"path": str(target)})
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        pass
    check_trained_on(adapter, base.fingerprint)
    tokenizer_gguf = BASE.path() if cfg.base_model == EMBEDDED else base.gguf
    record = {"id": name, "base": {k: base.fingerprint[k] for k in ("id", "format", "sha256")}, "adapter": str(adapter)}
    logger.info("merging the unified adapter into the base (%s, once per adapter) in %s", cfg.weights_format.upper(), target)
    if tokenizer_gguf is None:  # a base of your own without a GGUF: the float merge, for transformers
        with atomic_directory(target) as tmp:
            _merge(cfg, base, adapter, tmp)
            fingerprint = {"id": name, "format": "safetensors", "sha256": sha256_file(tmp / WEIGHTS_FILE)}
            (tmp / SOURCE_FILE).write_text(json.dumps(record | fingerprint | {"gguf": False}, indent=2) + "\n")
        return ServedModel(target, None, fingerprint | {"base": record["base"], "path": str(target)})
    with tempfile.TemporaryDirectory() as scratch:
        merged = _merge(cfg, base, adapter, Path(scratch))
        served = write_served(merged, target, cfg.weights_format, tokenizer_gguf, record | {"gguf": True})
    return ServedModel(served.path, served.gguf, served.fingerprint | {"base": record["base"]})


def _merge(cfg: ModelConfig, base: ServedModel, adapter: Path, out: Path) -> Path:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base.path, dtype=torch.float32, use_safetensors=True,
                                                 trust_remote_code=cfg.trust_remote_code)
    try:
        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    except (RuntimeError, ValueError) as e:  # shapes of another base
        raise ModelError(f"{adapter}: cannot be merged into {base.fingerprint['id']} ({str(e).splitlines()[0]})") from None
    model.save_pretrained(out, safe_serialization=True, max_shard_size="100GB")
    AutoTokenizer.from_pretrained(base.path, trust_remote_code=cfg.trust_remote_code).save_pretrained(out)
    return out
