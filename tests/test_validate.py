"""Validation: every corruption is reported with its file and line, exit 1; inputs stay byte-identical."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from pz2.config import DataConfig, ModelConfig
from pz2.data.generate import generate


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _set_line(path: Path, lineno: int, content: bytes) -> None:
    lines = _lines(path)
    lines[lineno - 1] = content.rstrip(b"\n") + b"\n"
    path.write_bytes(b"".join(lines))


def _edit_row(path: Path, lineno: int, edit) -> None:
    row = json.loads(_lines(path)[lineno - 1])
    edit(row)
    _set_line(path, lineno, json.dumps(row).encode())


def _append(path: Path, row: dict) -> int:
    path.write_bytes(path.read_bytes() + json.dumps(row).encode() + b"\n")
    return len(_lines(path))


def _first_text(path: Path) -> str:
    return json.loads(_lines(path)[0])["text"]


# Each corruption: the file it damages, how, the code it must raise, and the line it lands on.
def broken_json(d: Path) -> tuple[str, int]:
    _set_line(d / "classification_train.jsonl", 3, b'{"text": "oops", "label": 0')
    return "classification_train.jsonl", 3


def missing_field(d: Path) -> tuple[str, int]:
    _edit_row(d / "unified_train.jsonl", 2, lambda r: r.pop("category"))
    return "unified_train.jsonl", 2


def wrong_type(d: Path) -> tuple[str, int]:
    _edit_row(d / "classification_validation.jsonl", 4, lambda r: r.update(label="1"))
    return "classification_validation.jsonl", 4


def label_out_of_range(d: Path) -> tuple[str, int]:
    _edit_row(d / "classification_test.jsonl", 1, lambda r: r.update(label=3))
    return "classification_test.jsonl", 1


def empty_text(d: Path) -> tuple[str, int]:
    _edit_row(d / "dialogue_qna_train.jsonl", 2, lambda r: r.update(target_text="   "))
    return "dialogue_qna_train.jsonl", 2


def over_long_text(d: Path) -> tuple[str, int]:
    _edit_row(d / "dialogue_technical_train.jsonl", 5, lambda r: r.update(input_text="word " * 1000))
    return "dialogue_technical_train.jsonl", 5


def duplicate(d: Path) -> tuple[str, int]:
    path = d / "classification_train.jsonl"
    text = _first_text(path).upper() + "!!"  # differs only in case and punctuation
    return "classification_train.jsonl", _append(path, {"text": text, "label": 0})


def cross_split_leak(d: Path) -> tuple[str, int]:
    text = _first_text(d / "classification_train.jsonl")
    return "classification_test.jsonl", _append(d / "classification_test.jsonl", {"text": text, "label": 2})


def invalid_utf8(d: Path) -> tuple[str, int]:
    path = d / "unified_validation.jsonl"
    _set_line(path, 2, _lines(path)[1].replace(b"User: ", b"User: \xff\xfe"))
    return "unified_validation.jsonl", 2


CORRUPTIONS = {
    "invalid_json": broken_json, "missing_field": missing_field, "wrong_type": wrong_type,
    "label_range": label_out_of_range, "empty_text": empty_text, "too_long_chars": over_long_text,
    "duplicate": duplicate, "leak": cross_split_leak, "invalid_utf8": invalid_utf8,
}


def _digest(directory: Path) -> dict[str, tuple[str, int]]:
    return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in directory.iterdir()}


def test_generated_data_is_clean(cli, small_data: Path) -> None:
    result = cli("data", "validate", "--no-tokens")
    assert result.exit_code == 0, result.output
    assert "0 errors" in result.output


@pytest.mark.parametrize("code", sorted(CORRUPTIONS))
def test_each_corruption_is_reported_with_file_and_line(cli, small_data: Path, code: str) -> None:
    name, line = CORRUPTIONS[code](small_data)
    before = _digest(small_data)

    result = cli("data", "validate", "--no-tokens", "--json")
    assert result.exit_code == 1, result.output
    issues = json.loads(result.stdout)["issues"]
    assert {"severity": "error", "code": code, "line": line, "file": name} in [
        {"severity": i["severity"], "code": i["code"], "line": i["line"], "file": Path(i["path"]).name} for i in issues
    ]
    plain = cli("data", "validate", "--no-tokens")
    assert plain.exit_code == 1
    assert f"{small_data / name}:{line}" in plain.output
    assert _digest(small_data) == before, "the validator modified its input"


def test_every_corruption_at_once_is_all_reported(cli, small_data: Path) -> None:
    expected = {(code, *corrupt(small_data)) for code, corrupt in CORRUPTIONS.items()}
    result = cli("data", "validate", "--no-tokens", "--json")
    assert result.exit_code == 1
    found = {(i["code"], Path(i["path"]).name, i["line"]) for i in json.loads(result.stdout)["issues"]}
    assert expected <= found


def test_korean_messages(cli, small_data: Path) -> None:
    label_out_of_range(small_data)
    result = cli("data", "validate", "--no-tokens", "--lang", "ko")
    assert result.exit_code == 1
    assert "레이블 3 은(는) 0=qna, 1=technical, 2=general 중 하나가 아닙니다" in result.output
    assert "오류 1개" in result.output


def test_missing_seed_file_is_an_error(cli, small_data: Path) -> None:
    (small_data / "dialogue_general_train.jsonl").unlink()
    result = cli("data", "validate", "--no-tokens", "--json")
    assert result.exit_code == 1
    assert any(i["code"] == "file_missing" and i["path"].endswith("dialogue_general_train.jsonl")
               for i in json.loads(result.stdout)["issues"])


def test_missing_path_is_a_usage_error(cli, tmp_path: Path) -> None:
    result = cli("data", "validate", str(tmp_path / "nope.jsonl"))
    assert result.exit_code == 2
    assert "nope.jsonl: no such file or folder" in result.output
    assert "Traceback" not in result.output


def test_imbalance_is_a_warning_not_an_error(cli, tmp_path: Path) -> None:
    path = tmp_path / "classification_custom.jsonl"
    rows = [{"text": f"question number {i}", "label": 0} for i in range(40)]
    rows += [{"text": "hello there", "label": 2}, {"text": "how do I fix git", "label": 1}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = cli("data", "validate", "--no-tokens", "--json", str(path))
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert [i["code"] for i in report["issues"]] == ["imbalance"]
    assert report["files"][0]["labels"] == {"qna": 40, "technical": 1, "general": 1}


def test_seed_format_without_source_validates(cli, tmp_path: Path) -> None:
    (tmp_path / "classification_train.jsonl").write_text(
        '{"text": "What is the difference between lists and tuples in Python?", "label": 0}\n'
        '{"text": "How to draw a line in CAD software?", "label": 1}\n'
        '{"text": "Hello, how are you today?", "label": 2}\n')
    (tmp_path / "dialogue_qna_train.jsonl").write_text(
        '{"input_text": "What is a Python dictionary?", "target_text": "A dictionary stores key-value pairs."}\n')
    result = cli("data", "validate", "--no-tokens", str(tmp_path))
    assert result.exit_code == 0, result.output


def test_token_limit_uses_the_base_tokenizer(cli, workspace, small_data: Path) -> None:
    cfg_path = workspace.configs / "training_config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["validation"]["max_tokens"] = 40
    cfg_path.write_text(yaml.safe_dump(cfg))
    result = cli("data", "validate", "--json")
    assert result.exit_code == 1
    codes = {i["code"] for i in json.loads(result.stdout)["issues"]}
    assert codes == {"too_long_tokens"}  # the long specialist answers, and nothing else


def test_default_data_validates_clean_with_token_limits(cli, workspace) -> None:
    generate(DataConfig(), ModelConfig().system_prompt, workspace.datasets)
    result = cli("data", "validate", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["errors"] == 0 and report["warnings"] == 0
    assert len(report["files"]) == 15
