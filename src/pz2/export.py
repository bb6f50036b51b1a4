"""`pz2 export`: models for other tools. `--merge` folds a LoRA adapter into the model it was trained
on, for tools that cannot load adapters; `--vllm` writes what `vllm serve --enable-lora` needs to
serve that model with the pz2 adapters, so `runtime.engine.backend: openai` can route to it."""

from __future__ import annotations

import shutil
from pathlib import Path

from pz2.config import ModelConfig
from pz2.errors import ModelError
from pz2.fileio import atomic_directory, atomic_write_json
from pz2.models.artifacts import read_json
from pz2.models.loading import adapter_dir, check_trained_on, load_trained
from pz2.models.unified import merges, served_model
from pz2.workspace import Workspace


def export_merged(model_cfg: ModelConfig, model: Path, output: Path) -> Path:
    """A full float32 safetensors model equal to base + adapter, with the adapter's manifest."""
    adapter = adapter_dir(model)
    if adapter is None:
        raise ModelError(f"{model}: no LoRA adapter here (adapter_config.json); nothing to merge")
    from pz2.models.precision import EXACT

    peft_model, tokenizer = load_trained(model_cfg, model, EXACT)
    merged = peft_model.merge_and_unload()
    manifest_file = adapter / "manifest.json"
    manifest = read_json(manifest_file, "retrain the adapter") if manifest_file.exists() else {}
    with atomic_directory(output) as tmp:
        merged.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        atomic_write_json(tmp / "manifest.json", {**manifest, "merged_from": str(adapter)})
    return output


# vLLM's names, the ones `runtime.engine.openai.models` expects
VLLM_NAMES = {"unified": "unified", "qna": "qna-specialist", "technical": "technical-specialist"}


def export_vllm(ws: Workspace, model_cfg: ModelConfig, output: Path) -> Path:
    """`base/` (the Hugging Face folder of the model pz2 serves: the values the adapters were trained on,
    the unified adapter merged in with `merge_unified`), `adapters/<name>/` (PEFT folders, which vLLM
    reads as they are) and `serve.sh`, the `vllm serve` command over them."""
    unified = ws.unified_model / "adapter"
    trained = {kind: adapter_dir(unified if kind == "unified" else ws.specialist(kind)) for kind in VLLM_NAMES}
    missing = [kind for kind, path in trained.items() if path is None]
    merged = merges(model_cfg, unified)
    adapters = {kind: path for kind, path in trained.items() if not (merged and kind == "unified")}
    if missing:
        raise ModelError(f"no trained adapter for {', '.join(missing)}; train them first (`pz2 train ...`)")
    served = served_model(model_cfg, unified)
    for path in adapters.values():
        check_trained_on(path, served.identity)
    ranks = [read_json(path / "adapter_config.json", "retrain the adapter", {"r": int})["r"] for path in adapters.values()]
    name = "unified" if merged else "base"   # the name requests without an adapter go to (`openai.models.base`)
    with atomic_directory(output) as tmp:
        shutil.copytree(served.path, tmp / "base", ignore=shutil.ignore_patterns("*.gguf", "pz2_*"))
        for kind, path in adapters.items():
            shutil.copytree(path, tmp / "adapters" / VLLM_NAMES[kind])
        modules = " ".join(f"{VLLM_NAMES[k]}=\"$HERE/adapters/{VLLM_NAMES[k]}\"" for k in adapters)
        (tmp / "serve.sh").write_text(
            "#!/bin/sh\n# Serve the model pz2 serves with its adapters; then, in model_config.yaml, set runtime.engine.backend:\n"
            f"# openai, runtime.engine.openai.base_url: http://HOST:8001/v1 and openai.models.base: {name}.\n"
            'HERE="$(cd "$(dirname "$0")" && pwd)"\n'
            f'exec vllm serve "$HERE/base" --served-model-name {name} --enable-lora --lora-modules {modules} '
            f"--max-lora-rank {max(ranks)} --max-model-len {model_cfg.runtime.engine.context_length} "
            f'--port 8001 "$@"\n')
        (tmp / "serve.sh").chmod(0o755)
    return output
