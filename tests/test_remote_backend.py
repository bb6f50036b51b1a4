"""`runtime.engine.backend: openai`: the router generates through an OpenAI-compatible server, here a
second `pz2 serve` (a real process, started by its command line) on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import free_port, wait_healthy

from pz2.errors import ModelError
from pz2.runtime.assistant import Assistant
from pz2.runtime.engine import build_engine
from pz2.workspace import Workspace

QUESTION = "What is the difference between a list and a tuple in Python?"


@pytest.fixture(scope="module")
def backend(confident_ws: Workspace):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "pz2", "--workspace", str(confident_ws.root), "serve",
                             "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def _front(ws: Workspace, tmp_path, base_url: str) -> Workspace:
    """The same workspace, its generation sent to the backend."""
    root = tmp_path / "front" / "finetuning"
    shutil.copytree(ws.root, root, ignore=shutil.ignore_patterns("checkpoints", "training_logs", "logs"))
    path = root / "configs" / "model_config.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg["runtime"]["engine"].update(backend="openai", openai={"base_url": f"{base_url}/v1"})
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    return Workspace(root)


def test_remote_generation_matches_in_process_tokens_and_log_probabilities(confident_ws, backend, tmp_path) -> None:
    front = _front(confident_ws, tmp_path, backend)
    local = build_engine(confident_ws.model_config(), confident_ws.unified_model / "adapter")
    remote = build_engine(front.model_config(), confident_ws.unified_model / "adapter")
    assert remote.name == "openai" and remote.unified == local.unified == "unified"
    for name, path in (("unified", None), ("qna", confident_ws.specialist("qna"))):
        if path is not None:
            local.load(name, path)
            remote.load(name, path)
        here, there = local.generate(QUESTION, name), remote.generate(QUESTION, name)
        assert there.text == here.text and there.token_ids == here.token_ids
        assert there.logprobs == pytest.approx(here.logprobs[: len(there.logprobs)], abs=1e-4)
        assert len(there.logprobs) == len(here.token_ids)
        assert all(0 <= h <= e + 1e-6 for h, e in zip(there.entropies, here.entropies, strict=False)), \
            "the entropy over the top tokens is a lower bound"
        assert there.finished == here.finished


def test_the_router_runs_here_and_generates_there(confident_ws, backend, tmp_path) -> None:
    front_ws = _front(confident_ws, tmp_path, backend)
    front = Assistant.from_config(front_ws, front_ws.model_config())
    local = Assistant.from_config(confident_ws, confident_ws.model_config(), log=False)
    try:
        assert front.engine.name == "openai"
        for message, expert in ((QUESTION, True), ("hello, how are you?", False)):  # routes that need no confidence
            there, here = front.ask(message, expert=expert), local.ask(message, expert=expert)
            assert (there.route, there.reason, there.specialist) == (here.route, here.reason, here.specialist)
            assert there.answer == here.answer
        gated = front.ask("How do I undo the last commit in git?")
        assert gated.reason in ("confident", "low_confidence", "offer") and 0 <= gated.confidence <= 1, \
            "the confidence comes from the server's log-probabilities"
    finally:
        front.close()
        local.close()


def test_an_unreachable_backend_is_a_one_line_error(confident_ws, tmp_path) -> None:
    engine = build_engine(_front(confident_ws, tmp_path, f"http://127.0.0.1:{free_port()}").model_config())
    with pytest.raises(ModelError, match="the backend cannot be reached"):
        engine.generate("hello")
    with pytest.raises(ModelError, match="names no server model"):
        engine.load("poetry", confident_ws.specialist("qna"))


def test_export_for_vllm_writes_the_served_base_the_adapters_and_the_serve_command(hybrid, tmp_path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    from typer.testing import CliRunner

    from pz2.cli import app

    out = tmp_path / "vllm"
    result = CliRunner().invoke(app, ["--workspace", str(hybrid.root), "export", "--vllm", "--output", str(out)])
    assert result.exit_code == 0, result.output
    from pz2.models.prepare import served_base

    assert (out / "base" / "model.safetensors").read_bytes() == (served_base(hybrid.model_config()).path / "model.safetensors").read_bytes(), \
        "vLLM serves the values the adapters were trained on"
    base = AutoModelForCausalLM.from_pretrained(out / "base")
    for name in ("unified", "qna-specialist", "technical-specialist"):
        PeftModel.from_pretrained(base, out / "adapters" / name, adapter_name=name.replace("-", "_"))
    script = (out / "serve.sh").read_text()
    assert subprocess.run(["sh", "-n", str(out / "serve.sh")]).returncode == 0
    assert "vllm serve" in script and "--enable-lora" in script and "--max-lora-rank 16" in script
    assert "--served-model-name base" in script
    assert 'qna-specialist="$HERE/adapters/qna-specialist"' in script
    shutil.rmtree(hybrid.specialist("qna"))
    failed = CliRunner().invoke(app, ["--workspace", str(hybrid.root), "export", "--vllm", "--output", str(tmp_path / "x")])
    assert failed.exit_code == 1 and "no trained adapter for qna" in failed.output
    assert not (tmp_path / "x").exists()
