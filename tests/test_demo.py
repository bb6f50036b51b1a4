"""`pz2 demo --quick`: the fine-tuned unified model answers first, then the demo stops."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from conftest import SFT_FAST
from typer.testing import CliRunner

from pz2.cli import app
from pz2.workspace import Workspace


@pytest.mark.integration
def test_the_quick_demo_reaches_a_fine_tuned_answer_first_and_stops(workspace: Workspace, tiny_base: Path,
                                                                     tiny_gguf: Path) -> None:
    model = workspace.configs / "model_config.yaml"
    cfg = yaml.safe_load(model.read_text())
    cfg.update(base_model=str(tiny_base), weights_format="f32")
    cfg["runtime"]["engine"].update(gguf_model=str(tiny_gguf), max_new_tokens=8, threads=1, flash_attention=False)
    model.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    training = workspace.configs / "training_config.yaml"
    tcfg = yaml.safe_load(training.read_text())
    tcfg["data"]["per_category"] = 60
    tcfg["profiles"]["quick"] = SFT_FAST
    training.write_text(yaml.safe_dump(tcfg, allow_unicode=True))

    result = CliRunner().invoke(app, ["--workspace", str(workspace.root), "demo", "--quick"], catch_exceptions=False)

    assert result.exit_code == 0, result.output
    out = result.output
    steps = re.findall(r"(\d+)\. (generate|prepare|validate|the base model answers|fine-tune the unified model)", out)
    assert [int(n) for n, _ in steps] == [1, 2, 3, 4, 5]
    assert (workspace.unified_model / "adapter" / "adapter_config.json").exists()
    assert re.search(r"the fine-tuned unified model answered [\d.]+ minutes after the demo started", out)
    # the seed's scenario messages but the offer's acceptance; "오늘 날씨 어때?" has nothing the base reads
    assert len(re.findall(r"^  unified: ", out, re.M)) == 4 and "no English in it" in out
    assert "read as: SketchUp complex curved surfaces modeling advanced techniques?" in " ".join(out.split())
    assert "conversation-type classifier" not in out and not workspace.classifier.exists()   # stopped before the router's parts
    assert "where the demo's" in out and "pz2 demo" in out.split("where the demo's")[1]
