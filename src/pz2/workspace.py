"""The seed's `finetuning/` workspace: where configs, datasets, models and logs live."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pz2.config import ModelConfig, TrainingConfig, load_config
from pz2.errors import ConfigError, UsageError

MODEL_CONFIG = "model_config.yaml"
TRAINING_CONFIG = "training_config.yaml"


@dataclass(frozen=True)
class Workspace:
    """Paths under one workspace root; nothing is created until a command writes there."""

    root: Path
    models_dir: Path | None = None   # a models folder elsewhere (`pz2 eval compare --models`)

    @property
    def configs(self) -> Path:
        return self.root / "configs"

    @property
    def datasets(self) -> Path:
        return self.root / "datasets" / "processed_english"

    @property
    def real_datasets(self) -> Path:
        """Human-written rows converted by `pz2 data import`."""
        return self.root / "datasets" / "real_english"

    @property
    def models(self) -> Path:
        return self.models_dir or self.root / "models"

    @property
    def unified_model(self) -> Path:
        """The unified model's folder: its adapter, classifier and confidence model live inside."""
        return self.models / "unified_model"

    @property
    def classifier(self) -> Path:
        return self.unified_model / "classifier"

    def specialist(self, kind: str) -> Path:
        return self.models / f"{kind}_specialist"

    @property
    def knowledge(self) -> Path:
        """The knowledge base `pz2 kb build` writes and specialists retrieve from."""
        return self.root / "knowledge"

    @property
    def assistant_logs(self) -> Path:
        """Where the assistant appends one routing record per turn."""
        return self.root / "logs" / "assistant"

    @property
    def eval_logs(self) -> Path:
        """One folder per `pz2 eval compare` run."""
        return self.root / "logs" / "eval"

    @property
    def training_logs(self) -> Path:
        return self.root / "logs" / "training_logs"

    @property
    def checkpoints(self) -> Path:
        return self.root / "logs" / "checkpoints"

    def check(self) -> Workspace:
        """Itself, when it is a folder with both config files: a mistyped `--workspace` must not run on
        silent defaults (nor write a new tree where the user did not mean to)."""
        if not self.root.is_dir():
            raise UsageError(f"{self.root}: no such workspace folder; run pz2 beside the seed's finetuning/ folder "
                             "or name it with --workspace (or PZ2_WORKSPACE)")
        for name in (MODEL_CONFIG, TRAINING_CONFIG):
            if not (self.configs / name).is_file():
                raise ConfigError(self.configs / name, "missing; copy it from the repository's finetuning/configs/ "
                                  "(pz2 never runs a workspace on unstated defaults)")
        return self

    def model_config(self, overrides: dict | None = None) -> ModelConfig:
        return load_config(ModelConfig, self.configs / MODEL_CONFIG, overrides)

    def training_config(self, overrides: dict | None = None) -> TrainingConfig:
        return load_config(TrainingConfig, self.configs / TRAINING_CONFIG, overrides)
