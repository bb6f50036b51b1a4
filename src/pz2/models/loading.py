"""Load a trained model for generation: the base, optionally with a LoRA adapter (on the model it was
trained on), or a full model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pz2.config import ModelConfig
from pz2.errors import ModelError
from pz2.models.artifacts import load_tokenizer, pretrained, read_json
from pz2.models.base import load_base, load_causal_lm
from pz2.models.served import ModelIdentity

if TYPE_CHECKING:
    from pz2.models.precision import Placement

MANIFEST = "manifest.json"   # written by training beside every adapter: what it was trained on, with what


def adapter_dir(path: Path) -> Path | None:
    """The LoRA adapter in `path`: the folder itself, or its `adapter/` (models/unified_model/adapter)."""
    for candidate in (path, path / "adapter"):
        if (candidate / "adapter_config.json").exists():
            return candidate
    return None


@dataclass(frozen=True)
class Trained:
    """A trained model as pz2 finds it on disk: a LoRA adapter folder, a full Hugging Face model folder,
    or one GGUF file. Every loader asks this one question, so all refuse the same things alike."""

    kind: Literal["adapter", "full", "gguf"]
    path: Path


def find_trained(path: Path) -> Trained:
    adapter = adapter_dir(path)
    if adapter is not None:
        return Trained("adapter", adapter)
    if (path / "config.json").is_file():
        return Trained("full", path)
    ggufs = [path] if path.suffix == ".gguf" and path.is_file() else sorted(path.glob("*.gguf")) if path.is_dir() else []
    if len(ggufs) == 1:
        return Trained("gguf", ggufs[0])
    raise ModelError(f"{path}: neither a LoRA adapter (adapter_config.json), a model folder (config.json) nor "
                     "one .gguf file; train it first (`pz2 train unified` / `pz2 train specialist`)")


def check_trained_on(adapter: Path, served: ModelIdentity | None) -> None:
    """Refuse an adapter whose manifest says it was trained on another model than the one `served`:
    its update would be applied to weights it never saw. An adapter without a manifest (made elsewhere)
    records nothing to check and is taken as it is."""
    if served is None:
        return
    if not (adapter / MANIFEST).is_file():
        return
    manifest = read_json(adapter / MANIFEST, "retrain the adapter", {"base_model": dict})
    trained = ModelIdentity.from_record(manifest["base_model"])
    if served.same_values(trained):
        return
    kind = manifest.get("kind", "?")
    command = "pz2 train unified" if kind == "unified" else f"pz2 train specialist --type {kind}"
    stale = " (stale: the unified model was retrained since)" if trained.is_unified and served.is_unified else ""
    raise ModelError(f"{adapter}: trained on {trained.describe()}, but the engine serves {served.describe()}"
                     f"{stale}; retrain it (`{command}`)")


def _trained_on(adapter: Path) -> Path | None:
    """The model folder the adapter's manifest says it was trained on, when it is still there (a
    specialist's is the merged unified model, cached by content); None: the configured base."""
    if not (adapter / MANIFEST).is_file():
        return None
    recorded = read_json(adapter / MANIFEST, "retrain the adapter", {"base_model": dict})["base_model"].get("path")
    return Path(recorded) if isinstance(recorded, str) and (Path(recorded) / "config.json").is_file() else None


def load_for_generation(model_cfg: ModelConfig, path: Path | None,
                        placement: Placement | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) on the engine's device and dtype (`placement`: elsewhere): the base when `path`
    is None; base + adapter; or a full model directory."""
    if path is None:
        return load_base(model_cfg, placement=placement)
    if not path.exists():
        raise ModelError(f"{path}: no such model folder; train it first (`pz2 train unified` / `pz2 train specialist`)")
    trained = find_trained(path)
    if trained.kind == "adapter":
        from peft import PeftModel

        adapter = trained.path
        trained_on = _trained_on(adapter)
        if trained_on is None:
            from pz2.models.prepare import served_base

            check_trained_on(adapter, served_base(model_cfg).identity)
        base, _ = load_base(model_cfg, trained_on, placement)
        fix = "retrain the adapter"
        model = pretrained(lambda a: PeftModel.from_pretrained(base, a), adapter, "LoRA adapter", fix)
        return model.eval(), load_tokenizer(adapter, fix)
    if trained.kind == "gguf":
        raise ModelError(f"{trained.path}: a GGUF file; transformers loads a Hugging Face model folder or an adapter")
    fix = "retrain or re-export the model"
    from pz2.models.precision import Placement

    placement = placement or Placement.of(model_cfg.runtime.engine)
    return load_causal_lm(path, fix, placement, model_cfg.trust_remote_code), load_tokenizer(path, fix)
