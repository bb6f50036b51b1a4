"""Shared fixtures: a throw-away workspace per test, one prepared base per session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pz2.cli import app
from pz2.config import DataConfig, ModelConfig
from pz2.data.generate import generate
from pz2.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the whole session, so the base is converted at most once per run."""
    return tmp_path_factory.mktemp("pz2-cache")


@pytest.fixture
def workspace(tmp_path: Path, model_cache: Path) -> Workspace:
    """A copy of the repository's configs in a fresh workspace whose model cache is the session's."""
    root = tmp_path / "finetuning"
    shutil.copytree(REPO / "finetuning" / "configs", root / "configs")
    model_cfg = yaml.safe_load((root / "configs" / "model_config.yaml").read_text())
    model_cfg["cache_dir"] = str(model_cache)
    (root / "configs" / "model_config.yaml").write_text(yaml.safe_dump(model_cfg))
    return Workspace(root)


@pytest.fixture
def small_data(workspace: Workspace) -> Path:
    """A small but complete generated dataset (all nine files) in the workspace."""
    generate(DataConfig(per_category=60), ModelConfig().system_prompt, workspace.datasets)
    return workspace.datasets


@pytest.fixture
def cli(workspace: Workspace):
    """Invoke `pz2 --workspace <tmp> ...` in process."""
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, ["--workspace", str(workspace.root), *args], catch_exceptions=False)

    return invoke


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Path:
    """A randomly initialised two-layer Llama with the embedded base's tokenizer and chat template.

    Same tokenizer and architecture family as the real base, a thousandth of its size: training
    steps take milliseconds, so tests exercise the real transformers/PEFT code paths quickly.
    """
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from pz2.models.prepare import embedded_tokenizer_dir

    tokenizer = AutoTokenizer.from_pretrained(embedded_tokenizer_dir(ModelConfig(cache_dir=model_cache)))
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    path = tmp_path_factory.mktemp("tiny-base")
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
