"""The conversation-type classifier: trained for real on the embedded encoder, small data, few steps."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pz2.cli import app
from pz2.config import ClassifierConfig, DataConfig, ModelConfig
from pz2.data.generate import generate
from pz2.models.classifier_model import META_FILE
from pz2.runtime.classifier import ConversationClassifier
from pz2.training.classifier import train_classifier
from pz2.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
FAST = dict(epochs=2, batch_size=16, eval_every=5, patience=2, max_length=32)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    root = tmp_path_factory.mktemp("clf") / "finetuning"
    shutil.copytree(REPO / "finetuning" / "configs", root / "configs")
    workspace = Workspace(root)
    generate(DataConfig(per_category=70), ModelConfig().system_prompt, workspace.datasets)
    return workspace


@pytest.fixture(scope="module")
def finetuned(ws: Workspace):
    return train_classifier(ws, ClassifierConfig(method="finetune", include_real=False, **FAST), ModelConfig(),
                            ws.models / "unified_model" / "classifier")


@pytest.fixture(scope="module")
def setfit(ws: Workspace):
    cfg = ClassifierConfig(method="setfit", include_real=True, setfit_pairs=160, **FAST)
    return train_classifier(ws, cfg, ModelConfig(), ws.models / "setfit")


def _cli(ws: Workspace, *args: str):
    return CliRunner().invoke(app, ["--workspace", str(ws.root), *args], catch_exceptions=False)


@pytest.mark.integration
@pytest.mark.parametrize("result_name", ["finetuned", "setfit"])
def test_beats_chance_by_a_wide_margin_on_unseen_topics(request, result_name: str) -> None:
    result = request.getfixturevalue(result_name)
    assert result.metrics["test_macro_f1"] > 0.75  # chance is 0.33; the test topics were never trained on
    assert result.metrics["validation_nll_after"] <= result.metrics["validation_nll_before"] + 1e-9
    assert result.metrics["temperature"] > 0


def test_saved_in_hugging_face_format_with_everything_needed(finetuned) -> None:
    from transformers import AutoModelForSequenceClassification

    path = finetuned.path
    for name in ("config.json", "model.safetensors", "tokenizer.json", META_FILE, "metrics.json",
                 "reliability_validation.png"):
        assert (path / name).exists(), name
    assert not list(path.glob("*.bin")) and not list(path.glob("*.pkl"))
    meta = json.loads((path / META_FILE).read_text())
    assert meta["labels"] == ["qna", "technical", "general"]
    assert meta["config"]["method"] == "finetune"
    assert {Path(p).name for p in meta["data"]} == {"classification_train.jsonl", "classification_validation.jsonl",
                                                    "classification_test.jsonl", "classification_challenge.jsonl"}
    assert all(len(h) == 64 for h in meta["data"].values())
    plain = AutoModelForSequenceClassification.from_pretrained(path)  # loads in any HF tool
    assert plain.config.id2label == {0: "qna", 1: "technical", 2: "general"}


def test_setfit_honours_epochs_and_learning_rate(setfit) -> None:
    # 160 pairs in batches of 16 for the configured 2 epochs; the method's own rate when none is set
    assert setfit.metrics["steps"] == 2 * 160 // 16
    assert (setfit.metrics["epochs"], setfit.metrics["learning_rate"]) == (2, 2e-5)
    lr = ClassifierConfig(method="setfit", learning_rate=1e-3)
    assert (lr.train_epochs, lr.train_learning_rate) == (1, 1e-3)


def test_a_setfit_classifier_without_its_head_is_refused_in_one_line(setfit, tmp_path: Path) -> None:
    from pz2.errors import ModelError
    from pz2.models.classifier_model import HEAD_FILE

    broken = tmp_path / "setfit"
    shutil.copytree(setfit.path, broken)
    (broken / HEAD_FILE).unlink()
    with pytest.raises(ModelError, match=f"{HEAD_FILE}: missing; retrain it with `pz2 train classifier`"):
        ConversationClassifier.load(broken)
    (broken / HEAD_FILE).write_bytes(b"\x00" * 12)   # a truncated safetensors file
    with pytest.raises(ModelError, match="its head cannot be loaded"):
        ConversationClassifier.load(broken)


def test_setfit_uses_real_text_and_reports_on_it(setfit) -> None:
    assert "real_test_macro_f1" in setfit.metrics
    assert (setfit.path / "head.safetensors").exists()
    clf = ConversationClassifier.load(setfit.path)
    assert clf.meta["method"] == "setfit"


@pytest.mark.integration
@pytest.mark.parametrize("result_name", ["finetuned", "setfit"])
def test_probabilities_are_calibrated_distributions(request, result_name: str) -> None:
    clf = ConversationClassifier.load(request.getfixturevalue(result_name).path)
    preds = clf.predict(["What is photosynthesis?", "How do I create a layer in AutoCAD?", "I feel lonely tonight"])
    for p in preds:
        assert sum(p.probs.values()) == pytest.approx(1.0, abs=1e-6)
        assert p.confidence == max(p.probs.values())
    assert [p.label for p in preds] == ["qna", "technical", "general"]


BAD_INPUTS = {
    "empty": "",
    "whitespace": "   \n\t ",
    "huge": "please help me understand this " * 3400,  # ~100k characters
    "korean": "오늘 날씨 어때?",
    "emoji": "😀🎉🔥",
    "chinese": "你好，你今天怎么样？",
    "control": "\x00\x01 what \u200b is this",
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_gets_a_label_never_an_exception(finetuned, name: str) -> None:
    clf = ConversationClassifier.load(finetuned.path)
    [p] = clf.predict([BAD_INPUTS[name]])
    assert p.label in clf.labels
    assert sum(p.probs.values()) == pytest.approx(1.0, abs=1e-6)
    if name in ("empty", "whitespace"):
        assert p.confidence == pytest.approx(1 / 3) and p.note == "empty input: no signal"
    if name in ("korean", "emoji", "chinese"):  # nothing the English encoder can read: honest uniform
        assert p.confidence == pytest.approx(1 / 3) and p.note == "no English text: no signal"
    if name == "huge":
        assert p.note and p.note.startswith("truncated")


def test_partly_english_text_is_pulled_toward_uniform(finetuned) -> None:
    clf = ConversationClassifier.load(finetuned.path)
    english, mixed = clf.predict(["How do I create a layer in AutoCAD?", "AutoCAD 레이어 만드는 방법 알려주세요"])
    assert mixed.confidence < english.confidence
    assert "of the letters are English" in mixed.note


def test_eval_writes_json_markdown_and_both_pngs(finetuned, ws: Workspace, tmp_path: Path) -> None:
    import matplotlib.image

    data = ws.datasets / "classification_test.jsonl"
    result = _cli(ws, "eval", "classifier", "--data", str(data), "--output", str(tmp_path))
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["rows"] == len(data.read_text().splitlines())
    assert set(metrics["per_class"]) == {"qna", "technical", "general"}
    assert 0 <= metrics["ece"] <= 1 and np.array(metrics["confusion"]).sum() == metrics["rows"]
    report = (tmp_path / "report.md").read_text()
    assert "| macro-F1 |" in report and "Confusion matrix" in report
    for png in ("confusion_matrix.png", "reliability.png"):
        image = matplotlib.image.imread(tmp_path / png)
        assert image.ndim == 3 and image.shape[0] > 100


def test_classify_cli_single_and_batch(finetuned, ws: Workspace, tmp_path: Path) -> None:
    one = _cli(ws, "classify", "--json", "How do I trim lines in AutoCAD?")
    assert one.exit_code == 0
    assert json.loads(one.stdout)["label"] == "technical"

    src = tmp_path / "in.jsonl"
    src.write_text('{"id": 1, "text": "thx"}\n\n{"id": 2, "text": "what is DNS"}\n')
    out = tmp_path / "out.jsonl"
    batch = _cli(ws, "classify", "--input", str(src), "--output", str(out))
    assert batch.exit_code == 0, batch.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [1, 2] and all("probs" in r for r in rows)

    plain = tmp_path / "lines.txt"
    plain.write_text("hello there\nhow to undo the last commit in git\n")
    lines = _cli(ws, "classify", "--input", str(plain))
    assert [json.loads(line)["text"] for line in lines.stdout.splitlines()] == [
        "hello there", "how to undo the last commit in git"]

    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("fine\ncaf\u00e9 cr\u00e8me\n".encode("latin-1"))
    refused = _cli(ws, "classify", "--input", str(latin1))
    assert refused.exit_code == 1 and f"{latin1}:2: not UTF-8" in refused.output, "never replaced silently"

    src.write_text('{"text": "fine"}\n{"text": broken\n')
    bad = _cli(ws, "classify", "--input", str(src), "--output", str(tmp_path / "never.jsonl"))
    assert bad.exit_code == 1 and f"{src}:2: invalid JSON" in bad.output
    assert not (tmp_path / "never.jsonl").exists()


def test_missing_classifier_is_a_clear_error(ws: Workspace, tmp_path: Path) -> None:
    result = _cli(ws, "classify", "--model", str(tmp_path), "hello")
    assert result.exit_code == 1
    assert "run `pz2 train classifier`" in result.output


def test_classifying_one_text_reports_a_broken_config(ws: Workspace, tmp_path: Path) -> None:
    config = ws.configs / "model_config.yaml"
    good = config.read_text()
    config.write_text(good + "\nruntime_typo: 1\n")
    try:
        result = _cli(ws, "classify", "--model", str(tmp_path), "hello")
    finally:
        config.write_text(good)
    assert result.exit_code == 1 and "`runtime_typo`: unknown key" in result.output


def test_bad_training_data_stops_with_the_validators_message(tmp_path: Path) -> None:
    root = tmp_path / "finetuning"
    shutil.copytree(REPO / "finetuning" / "configs", root / "configs")
    workspace = Workspace(root)
    generate(DataConfig(per_category=20), ModelConfig().system_prompt, workspace.datasets)
    path = workspace.datasets / "classification_train.jsonl"
    lines = path.read_text().splitlines()
    lines[4] = '{"text": "ok", "label": 7}'
    path.write_text("\n".join(lines) + "\n")
    result = _cli(workspace, "train", "classifier", "--no-include-real")
    assert result.exit_code == 1
    assert f"{path}:5: label 7 is not one of 0=qna, 1=technical, 2=general" in result.output
    assert not (workspace.models / "unified_model" / "classifier").exists()
