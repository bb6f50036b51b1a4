"""Real, human-written data from the packaged corpora: formats, sources, stable splits, mixing."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from pz2.config import DataConfig, ModelConfig, ValidationConfig
from pz2.data.generate import generate
from pz2.data.real import import_real, real_rows, split_of
from pz2.data.schema import normalize
from pz2.data.validate import validate_directory


def test_both_corpora_contribute_rows_with_their_source() -> None:
    rows = real_rows(max_per_source=300)
    sources = Counter(r.source.split(":")[0] for r in rows)
    assert sources["chitchat-dataset"] == 300
    assert 0 < sources["chatterbot-corpus"] <= 300
    assert {r.category for r in rows} == {"qna", "technical", "general"}
    trivia = [r for r in rows if r.source.startswith("chatterbot-corpus:trivia:")]
    assert trivia and all(r.category == "qna" for r in trivia)


def test_import_writes_valid_files_with_stable_splits(tmp_path: Path) -> None:
    report = import_real(tmp_path / "a", max_per_source=200)
    import_real(tmp_path / "b", max_per_source=200)
    for name in report.rows:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    for split in ("train", "validation", "test"):
        for line in (tmp_path / "a" / f"classification_{split}.jsonl").read_text().splitlines():
            row = json.loads(line)
            assert split_of(row["source"]) == split and row["source"]
    validation = validate_directory(tmp_path / "a", ValidationConfig(), require_defaults=False)
    assert validation.ok, [i.message() for i in validation.errors]


def test_include_real_mixes_real_rows_into_every_split_without_leaks(tmp_path: Path) -> None:
    report = generate(DataConfig(per_category=100, include_real=True), ModelConfig().system_prompt, tmp_path)
    assert report.real_rows > 500
    per_split = {}
    for split in ("train", "validation", "test"):
        rows = [json.loads(line) for line in (tmp_path / f"unified_{split}.jsonl").read_text().splitlines()]
        per_split[split] = {normalize(r["input_text"].split("\n\nUser: ")[1]) for r in rows}
        assert any(r["source"] != "generated" for r in rows)
    assert not per_split["train"] & per_split["test"]
    assert not per_split["train"] & per_split["validation"]
    validation = validate_directory(tmp_path, ValidationConfig())
    assert not validation.errors, [f"{i.location()}: {i.message()}" for i in validation.errors[:5]]


def test_cli_import(cli, workspace) -> None:
    result = cli("data", "import", "--max-per-source", "50")
    assert result.exit_code == 0, result.output
    assert (workspace.datasets.parent / "real_english" / "classification_train.jsonl").exists()


def test_challenge_set_is_balanced_and_never_generated(tmp_path: Path) -> None:
    from pz2.data.jsonl import read_jsonl
    from pz2.data.real import CHALLENGE_FILE

    rows = read_jsonl(CHALLENGE_FILE)
    assert Counter(r["label"] for r in rows) == {0: 40, 1: 40, 2: 40}
    generate(DataConfig(), ModelConfig().system_prompt, tmp_path)
    generated = {normalize(json.loads(line)["text"]) for split in ("train", "validation", "test")
                 for line in (tmp_path / f"classification_{split}.jsonl").read_text().splitlines()}
    assert not {normalize(r["text"]) for r in rows} & generated
    report = import_real(tmp_path / "real", max_per_source=10)
    assert report.rows["classification_challenge.jsonl"] == 120
