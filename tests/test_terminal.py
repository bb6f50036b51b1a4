"""The terminal assistant driven through a pseudo-terminal: keys in, screen out, as a user would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest
import yaml

from pz2.config import KnowledgeConfig, TrainingConfig
from pz2.knowledge.build import build_knowledge
from pz2.models.sentence import SentenceEncoder
from pz2.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
PROMPT = "you ▸"


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TERM": "dumb", "NO_COLOR": "1",
            "COLUMNS": "240", "PYTHONIOENCODING": "utf-8"}


@pytest.fixture
def seed_layout(confident_ws: Workspace, tmp_path: Path) -> Path:
    """The seed's layout around the trained workspace: main.py beside finetuning/, scripts inside it."""
    root = tmp_path / "project"
    # not its logs: other tests' turns and ratings are in the shared workspace's
    shutil.copytree(confident_ws.root, root / "finetuning", ignore=shutil.ignore_patterns("checkpoints", "training_logs", "logs"))
    shutil.copy(REPO / "main.py", root / "main.py")
    shutil.copytree(REPO / "finetuning" / "scripts", root / "finetuning" / "scripts", dirs_exist_ok=True)
    config = root / "finetuning" / "configs" / "model_config.yaml"
    cfg = yaml.safe_load(config.read_text(encoding="utf-8"))
    cfg["runtime"]["engine"]["context_length"] = 192  # small, so a typed message can overflow it
    config.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "autocad.md").write_text("# AutoCAD\n\nType TRIM, then click each segment to cut away.\n", encoding="utf-8")
    ws = Workspace(root / "finetuning")
    build_knowledge(ws.knowledge, KnowledgeConfig(collections=[]), TrainingConfig(),
                    SentenceEncoder.load(ws.model_config()), [docs])
    return root


def test_chat_in_a_pseudo_terminal_with_expert_offer_status_ft_and_quit(seed_layout: Path) -> None:
    child = pexpect.spawn(sys.executable, [str(seed_layout / "main.py")], cwd=str(seed_layout), env=_env(),
                          encoding="utf-8", timeout=120, dimensions=(50, 240))
    try:
        child.expect(PROMPT)
        child.sendline("I feel sad today")
        child.expect("assistant ▸")
        child.expect(r"route unified · general")
        child.expect(PROMPT)

        child.sendline("/expert How do I trim lines in AutoCAD?")
        child.expect("technical specialist ▸")
        child.expect("sources:")
        child.expect(r"\[1\] AutoCAD · .*autocad.md:1-3 · similarity")
        child.expect(r"route specialist · explicit_request \(asked for it \('/expert'\)\)")
        child.expect(PROMPT)
        child.sendline("/sources")
        child.expect("Type TRIM, then click each segment to cut away.")
        child.expect(PROMPT)

        child.sendline("SketchUp에서 복잡한 곡면 모델링하는 고급 기법을 알려줘")  # seed scenario 2
        child.expect("route offer · offer")
        child.expect("더 전문적인 답변이 필요하시나요?")
        child.expect(PROMPT)
        child.sendline("네, 전문가 모드로 해주세요")
        child.expect("technical specialist ▸")
        child.expect(PROMPT)
        child.sendline("/bad materials, not curved surfaces")   # a rating of the last answer, for the router's refit
        child.expect("the last answer is rated bad")
        child.expect(PROMPT)

        child.sendline("tell me more " * 60)  # longer than the context: an error line, and the chat goes on
        child.expect("error:")
        child.expect("fills the engine's context")
        child.expect(PROMPT)

        child.sendline("/status")
        child.expect('"engine": "llamacpp"')
        child.expect(PROMPT)

        child.sendline("/ft")
        child.expect("fine-tuning menu")
        child.expect("choice ▸")
        child.sendline("1")
        child.expect(r"\$ pz2 status")
        child.expect("classifier")  # the status table lists the trained models
        child.expect("choice ▸")
        child.sendline("0")
        child.expect(PROMPT)

        child.sendline("/quit")
        child.expect("bye")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    logs = seed_layout / "finetuning" / "logs" / "assistant"
    ratings = [json.loads(line) for line in (logs / "feedback.jsonl").read_text().splitlines()]
    turns = {r["id"]: r for r in map(json.loads, (logs / "decisions.jsonl").read_text().splitlines())}
    assert [(r["rating"], r["how"], r["comment"]) for r in ratings] == [
        ("bad", "offer_accepted", None), ("bad", "command", "materials, not curved surfaces")]
    offered, expert = turns[ratings[0]["turn"]], turns[ratings[1]["turn"]]
    assert offered["route"] == "offer" and expert["route"] == "specialist" and expert["follows"] == offered["id"]
    assert child.exitstatus == 0


def test_ctrl_d_leaves_cleanly(seed_layout: Path) -> None:
    child = pexpect.spawn(sys.executable, ["-m", "pz2", "--workspace", str(seed_layout / "finetuning"), "chat"],
                          env=_env(), encoding="utf-8", timeout=120)
    child.expect(PROMPT)
    child.sendeof()
    child.expect("bye")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_the_seed_inference_script_single_and_batch(seed_layout: Path, tmp_path: Path) -> None:
    script = seed_layout / "finetuning" / "scripts" / "unified_inference.py"
    single = subprocess.run([sys.executable, str(script), "--mode", "single", "--text", "I feel sad today", "--json"], check=False,
                            env=_env(), capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr
    assert '"reason": "general"' in single.stdout
    source, target = tmp_path / "q.jsonl", tmp_path / "a.jsonl"
    source.write_text('{"text": "SketchUp expert mode advanced modeling"}\n', encoding="utf-8")
    batch = subprocess.run([sys.executable, str(script), "--mode", "batch", "--input", str(source), "--output", str(target)], check=False,
                           env=_env(), capture_output=True, text=True, timeout=300)
    assert batch.returncode == 0, batch.stderr
    assert '"reason": "explicit_request"' in target.read_text(encoding="utf-8")
