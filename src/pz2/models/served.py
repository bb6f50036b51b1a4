"""Which model pz2 serves, and which model an adapter was trained on: one typed identity for both.

Every adapter's manifest records the identity of the model it was trained on (`base_model`), and an
engine refuses an adapter whose record does not match what it serves: the update would be applied to
weights it never saw. The served model is the configured base (the embedded one, prepared by
models/prepare.py, or a base of your own), or, with `merge_unified`, the unified model merged into that
base (models/unified.py), whose identity then names the base it was merged into.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pz2.config import EMBEDDED, ModelConfig
from pz2.models.embedded import BASE

UNIFIED_PREFIX = "unified:"   # the id of a merged unified model: unified:<its adapter's hash>


def is_embedded(cfg: ModelConfig) -> bool:
    """The base is the one shipped with pz2 (`base_model: embedded`): pz2 prepares its files."""
    return cfg.base_model == EMBEDDED


def base_id(cfg: ModelConfig) -> str:
    """The id of the configured base, as adapters record it, known without reading a file."""
    return f"embedded:{BASE.name}" if is_embedded(cfg) else cfg.base_model


def base_name(cfg: ModelConfig) -> str:
    """The base's name for people and for the API's model list."""
    return BASE.name if is_embedded(cfg) else cfg.base_model


@dataclass(frozen=True)
class ModelIdentity:
    """What a served model is, by content: adapters trained on it record this, and a match is by hash."""

    id: str                               # embedded:<name>, the base_model as configured, or unified:<hash>
    format: str                           # q4_1, q8_0, f32 … (a GGUF's), or safetensors
    sha256: str                           # of the GGUF when there is one, else of the weight files
    architecture: str | None = None       # the model_type; None for a merged unified model
    same_values_as: str | None = None     # the hash an earlier pz2 recorded for the same values (the shipped GGUF's)
    base: ModelIdentity | None = None     # a merged unified model: the base it was merged into

    @property
    def is_unified(self) -> bool:
        return self.base is not None or self.id.startswith(UNIFIED_PREFIX)

    def same_values(self, other: ModelIdentity) -> bool:
        """Whether `other` (an adapter's record) names these very weights."""
        return other.sha256 in {self.sha256, self.same_values_as} - {None, ""}

    def describe(self) -> str:
        arch = f"{self.architecture}, " if self.architecture else ""
        return f"{self.id} ({arch}{self.format}, sha256 {self.sha256[:12]})"

    def record(self) -> dict[str, Any]:
        """As written to manifests and cache records (the keys earlier pz2 releases wrote, unset ones left out)."""
        out: dict[str, Any] = {"id": self.id, "format": self.format, "sha256": self.sha256}
        if self.architecture is not None:
            out["architecture"] = self.architecture
        if self.same_values_as is not None:
            out["same_values_as"] = self.same_values_as
        if self.base is not None:
            out["base"] = self.base.record()
        return out

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ModelIdentity:
        """From a manifest's `base_model` or a cache record; keys it does not know (path, adapter …) are skipped."""
        base = record.get("base")
        return cls(str(record.get("id", "?")), str(record.get("format", "?")), str(record.get("sha256") or ""),
                   record.get("architecture"), record.get("same_values_as"),
                   cls.from_record(base) if isinstance(base, dict) else None)


@dataclass(frozen=True)
class ServedModel:
    """A model as the engines serve it: `path` a Hugging Face folder (training, the transformers engine),
    `gguf` the file llama.cpp reads (None where pz2 writes no GGUF for the architecture), its identity,
    and whether it stands on the embedded base (pz2 wrote its GGUF; no other engine is tried for it)."""

    path: Path
    gguf: Path | None
    identity: ModelIdentity
    embedded: bool = False

    def record(self) -> dict[str, Any]:
        """What an adapter's manifest records as `base_model`: the identity and the folder trained on."""
        return self.identity.record() | {"path": str(self.path)}
