"""`pz2 export --merge`: fold a LoRA adapter into the base, for tools that cannot load adapters."""

from __future__ import annotations

import json
from pathlib import Path

from pz2.config import ModelConfig
from pz2.errors import ModelError
from pz2.fileio import atomic_directory, atomic_write_json
from pz2.models.loading import adapter_dir, load_for_generation


def export_merged(model_cfg: ModelConfig, model: Path, output: Path) -> Path:
    """A full float32 safetensors model equal to base + adapter, with the adapter's manifest."""
    adapter = adapter_dir(model)
    if adapter is None:
        raise ModelError(f"{model}: no LoRA adapter here (adapter_config.json); nothing to merge")
    peft_model, tokenizer = load_for_generation(model_cfg, model)
    merged = peft_model.merge_and_unload()
    manifest_file = adapter / "manifest.json"
    manifest = json.loads(manifest_file.read_text()) if manifest_file.exists() else {}
    with atomic_directory(output) as tmp:
        merged.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        atomic_write_json(tmp / "manifest.json", {**manifest, "merged_from": str(adapter)})
    return output
