"""The CLI and the seed's scripts: help with examples, generate, import, status."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pz2.cli import app

REPO = Path(__file__).resolve().parents[1]
COMMANDS = [[], ["data"], ["data", "generate"], ["data", "import"], ["data", "validate"], ["models"],
            ["models", "prepare"], ["status"], ["demo"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "pz2")
def test_every_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output
    if len(command) == 2 or command in (["status"], ["demo"]):
        assert "Example: pz2 " in result.output


def test_generate_then_status(cli, workspace) -> None:
    result = cli("data", "generate", "--per-category", "30", "--seed", "5")
    assert result.exit_code == 0, result.output
    assert "classification_train.jsonl" in result.output
    status = cli("status", "--json")
    assert status.exit_code == 0
    entries = json.loads(status.stdout)
    datasets = {e["name"]: e for e in entries if e["group"] == "dataset"}
    assert len(datasets) == 15  # the seed's nine and the held-out dialogue splits
    assert datasets["processed_english/unified_test.jsonl"]["rows"] > 0
    manifest = json.loads((workspace.datasets / "generation.json").read_text())
    assert manifest["seed"] == 5 and manifest["per_category"] == 30


def test_status_on_an_empty_workspace(cli) -> None:
    result = cli("status")
    assert result.exit_code == 0
    assert "nothing yet" in result.output


@pytest.mark.parametrize("text", ["", "   "])
def test_an_empty_single_message_is_refused_not_an_interactive_chat(cli, text: str) -> None:
    result = cli("chat", "--text", text)
    assert result.exit_code == 2 and "--text is empty" in result.output   # a usage error


def test_status_shows_model_metrics(cli, workspace) -> None:
    model = workspace.models / "unified_model" / "classifier"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (model / "metrics.json").write_text('{"macro_f1": 0.97}')
    entries = json.loads(cli("status", "--json").stdout)
    assert [e["metrics"] for e in entries if e["group"] == "model"] == [{"macro_f1": 0.97}]


def _seed_workspace(workspace) -> Path:
    """The seed's scripts, copied beside the test workspace: they find their workspace from their own path."""
    shutil.copytree(REPO / "finetuning" / "scripts", workspace.root / "scripts")
    return workspace.root / "scripts"


def test_seed_scripts_generate_and_validate(workspace) -> None:
    scripts = _seed_workspace(workspace)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    gen = subprocess.run([sys.executable, str(scripts / "generate_english_datasets.py"), "--per-category", "20"],
                         capture_output=True, text=True, env=env, cwd=workspace.root.parent, timeout=120)
    assert gen.returncode == 0, gen.stderr
    assert (workspace.datasets / "unified_train.jsonl").exists()
    val = subprocess.run([sys.executable, str(scripts / "validate_english_data.py"), "--no-tokens"],
                         capture_output=True, text=True, env=env, cwd="/", timeout=120)
    assert val.returncode == 0, val.stdout + val.stderr
    assert "0 errors" in val.stdout
    bad = subprocess.run([sys.executable, str(scripts / "validate_english_data.py"), "--no-such-flag"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2


def test_python_dash_m_and_help_is_fast() -> None:
    code = "import sys, pz2.cli; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "False"], "importing the CLI must not import torch or transformers"
    result = subprocess.run([sys.executable, "-m", "pz2", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "pz2 demo" in result.stdout
