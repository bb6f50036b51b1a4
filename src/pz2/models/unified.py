"""The unified model merged into the base (`merge_unified`), written like the base.

An unmerged LoRA costs every token two extra matrix products per layer and module (a 48-token
unified answer 0.59 s against 0.39 s merged, benchmarks/engine_speed.py); merged, the unified
route decodes as fast as the bare base. The specialists are then trained as adapters on
the merged model's served values (two stages: unified first, then each specialist continues from
it) and stay exact, with one model in memory for all three.

On a float base the merge is exact. On a 4-bit base it is not worth having: the base's weights sit
on the quantization grid, and rounding base + update puts most of them back on the same points
(benchmarks/base_format.py: perplexity of the references 11.6 with the LoRA unmerged, 17.0 merged
into Q4_1, 17.9 the bare base; merged into Q8_0 it keeps 11.6 but is only 7 % faster than Q4_1
with the LoRA), which is why `merge_unified` is off by default.

The merged model is cached by content: its folder is named by the adapter's and the base's hashes,
so retraining the unified model makes a new one, and the specialists trained on the old one are
refused as stale until retrained.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

from pz2.config import ModelConfig
from pz2.errors import ModelError
from pz2.fileio import atomic_directory, sha256_file
from pz2.models.artifacts import first_line
from pz2.models.embedded import BASE
from pz2.models.gguf_export import lora_weights
from pz2.models.loading import adapter_dir, check_trained_on
from pz2.models.prepare import GGUF_FILE, SOURCE_FILE, WEIGHTS_FILE, served_base, write_served
from pz2.models.served import UNIFIED_PREFIX, ModelIdentity, ServedModel

logger = logging.getLogger(__name__)


def merges(cfg: ModelConfig, unified: Path | None) -> bool:
    """Whether the unified model is served merged (`merge_unified`, and its adapter `unified` exists)."""
    return cfg.merge_unified and unified is not None and adapter_dir(unified) is not None


def served_model(cfg: ModelConfig, unified: Path | None) -> ServedModel:
    """What the engines serve and the specialists train on: with `merge_unified`, the unified model
    once its adapter (`unified`) exists; otherwise the base."""
    return served_unified(cfg, unified) if merges(cfg, unified) else served_base(cfg)


def unified_id(adapter: Path) -> str:
    return f"{UNIFIED_PREFIX}{sha256_file(lora_weights(adapter))[:16]}"


def served_unified(cfg: ModelConfig, adapter: Path) -> ServedModel:
    """The unified model merged and written in `weights_format`, built once per (adapter, base); the
    specialists train on the values that file holds, so it is exact for them at any format. A base of
    your own whose architecture pz2 writes no GGUF for gets the float merge, for transformers."""
    from pz2.models.gguf_export import ARCHITECTURES

    base = served_base(cfg)
    adapter = adapter_dir(adapter) or adapter
    name = unified_id(adapter)
    fmt = cfg.weights_format
    target = cfg.cache_dir.expanduser() / "unified" / f"{name.removeprefix(UNIFIED_PREFIX)}-{base.identity.sha256[:12]}-{fmt}"
    try:
        recorded = json.loads((target / SOURCE_FILE).read_text())
        return ServedModel(target, target / GGUF_FILE if recorded["gguf"] else None,
                           ModelIdentity.from_record(recorded), base.embedded)
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        pass
    check_trained_on(adapter, base.identity)
    merged_into = ModelIdentity(base.identity.id, base.identity.format, base.identity.sha256)
    record = {"id": name, "base": merged_into.record(), "adapter": str(adapter)}
    logger.info("merging the unified adapter into the base (%s, once per adapter) in %s", fmt.upper(), target)
    if base.identity.architecture not in ARCHITECTURES:  # no GGUF form: the float merge, for transformers
        with atomic_directory(target) as tmp:
            merge_adapter(cfg, base, adapter, tmp)
            identity = ModelIdentity(name, "safetensors", sha256_file(tmp / WEIGHTS_FILE), base=merged_into)
            (tmp / SOURCE_FILE).write_text(json.dumps(record | identity.record() | {"gguf": False}, indent=2) + "\n")
        return ServedModel(target, None, identity, base.embedded)
    with tempfile.TemporaryDirectory() as scratch:
        merged = merge_adapter(cfg, base, adapter, Path(scratch))
        served = write_served(merged, target, fmt, BASE.path() if base.embedded else base.path, record | {"gguf": True})
    return ServedModel(served.path, served.gguf, ModelIdentity.from_record(record | served.identity.record()),
                       base.embedded)


def merge_adapter(cfg: ModelConfig, base: ServedModel, adapter: Path, out: Path) -> Path:
    """Base + adapter as one float32 checkpoint in `out` (not yet written in a served format)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base.path, dtype=torch.float32, use_safetensors=True,
                                                 trust_remote_code=cfg.trust_remote_code)
    try:
        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    except (RuntimeError, ValueError) as e:  # shapes of another base
        raise ModelError(f"{adapter}: cannot be merged into {base.identity.id} ({first_line(e)})") from None
    model.save_pretrained(out, safe_serialization=True, max_shard_size="100GB")
    AutoTokenizer.from_pretrained(base.path, trust_remote_code=cfg.trust_remote_code).save_pretrained(out)
    return out
