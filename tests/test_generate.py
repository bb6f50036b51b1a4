"""Generation: the seed's nine files, deterministic, diverse, leak-free, labelled as DESIGN.md §2 says."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from pz2.config import DataConfig, ModelConfig
from pz2.data.generate import SEED_EXAMPLES, generate
from pz2.data.schema import DEFAULT_FILES, LABEL_IDS, LABELS, normalize

PROMPT = ModelConfig().system_prompt


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _bytes(directory: Path) -> dict[str, bytes]:
    return {name: (directory / name).read_bytes() for name in DEFAULT_FILES}


def test_writes_the_nine_seed_files_in_their_formats(tmp_path: Path) -> None:
    report = generate(DataConfig(per_category=100), PROMPT, tmp_path)
    assert set(DEFAULT_FILES) <= set(report.rows)
    extra = {f"dialogue_{c}_{s}.jsonl" for c in LABELS for s in ("validation", "test")}
    assert set(report.rows) == set(DEFAULT_FILES) | extra
    assert all(report.rows[name] > 0 for name in DEFAULT_FILES)
    for row in _read(tmp_path / "classification_train.jsonl"):
        assert set(row) == {"text", "label", "source"} and row["label"] in (0, 1, 2)
    for row in _read(tmp_path / "dialogue_qna_train.jsonl"):
        assert set(row) == {"input_text", "target_text", "source"}
    for row in _read(tmp_path / "unified_validation.jsonl"):
        assert set(row) == {"input_text", "target_text", "category", "source"}
        assert row["input_text"].startswith(f"System: {PROMPT}\n\nUser: ")
        assert row["input_text"].endswith("\nAssistant:")
        assert row["category"] in LABELS


def test_same_seed_same_bytes_other_seed_other_data(tmp_path: Path) -> None:
    generate(DataConfig(seed=3, per_category=80), PROMPT, tmp_path / "a")
    generate(DataConfig(seed=3, per_category=80), PROMPT, tmp_path / "b")
    generate(DataConfig(seed=4, per_category=80), PROMPT, tmp_path / "c")
    assert _bytes(tmp_path / "a") == _bytes(tmp_path / "b")
    assert _bytes(tmp_path / "a") != _bytes(tmp_path / "c")


@pytest.mark.parametrize("seed", [0, 42])
def test_no_question_in_two_splits_and_no_duplicates(tmp_path: Path, seed: int) -> None:
    generate(DataConfig(seed=seed, per_category=400), PROMPT, tmp_path)
    split_of: dict[str, str] = {}
    for split in ("train", "validation", "test"):
        texts = [normalize(r["text"]) for r in _read(tmp_path / f"classification_{split}.jsonl")]
        assert len(texts) == len(set(texts)), f"duplicate in {split}"
        for t in texts:
            assert split_of.setdefault(t, split) == split, f"{t!r} in {split_of[t]} and {split}"
    # and the held-out questions belong to topics never seen in training: no shared answer
    answers = {s: {r["target_text"] for r in _read(tmp_path / f"unified_{s}.jsonl") if r["category"] != "general"}
               for s in ("train", "validation", "test")}
    assert not answers["train"] & answers["test"]
    assert not answers["train"] & answers["validation"]


def test_default_size_is_several_thousand_balanced_rows(tmp_path: Path) -> None:
    report = generate(DataConfig(), PROMPT, tmp_path)
    assert report.rows["unified_train.jsonl"] >= 3000
    counts = Counter(r["label"] for r in _read(tmp_path / "classification_train.jsonl"))
    assert max(counts.values()) / min(counts.values()) < 1.2
    assert report.seconds < 10


def test_seed_examples_land_where_the_seed_puts_them(tmp_path: Path) -> None:
    generate(DataConfig(per_category=60), PROMPT, tmp_path)
    train = {r["text"]: r["label"] for r in _read(tmp_path / "classification_train.jsonl")}
    for text, category in SEED_EXAMPLES:
        assert train.get(text) == LABEL_IDS[category], text


def test_specialist_targets_are_more_detailed_than_unified_ones(tmp_path: Path) -> None:
    generate(DataConfig(per_category=60), PROMPT, tmp_path)
    unified = {r["input_text"].split("\n\nUser: ")[1].removesuffix("\nAssistant:"): r["target_text"]
               for r in _read(tmp_path / "unified_train.jsonl")}
    for kind in ("qna", "technical"):
        rows = _read(tmp_path / f"dialogue_{kind}_train.jsonl")
        assert rows
        for r in rows:
            assert "\n1. " in r["target_text"], "specialist answers are numbered steps or points"
            assert len(r["target_text"]) > len(unified[r["input_text"]])


def test_phrasings_are_diverse(tmp_path: Path) -> None:
    generate(DataConfig(per_category=300), PROMPT, tmp_path)
    texts = [r["text"] for r in _read(tmp_path / "classification_train.jsonl")]
    assert sum(t == t.lower() for t in texts) > len(texts) * 0.1, "casual lowercase turns"
    assert sum(not t.rstrip().endswith(("?", ".", "!")) for t in texts) > len(texts) * 0.1, "unpunctuated turns"
    first_words = Counter(t.split()[0].lower().strip(",!:") for t in texts)
    assert len(first_words) > 40


@pytest.mark.parametrize("n", [10, 60])
def test_even_a_tiny_dataset_has_every_category_in_every_split(tmp_path: Path, n: int) -> None:
    generate(DataConfig(per_category=n), PROMPT, tmp_path)
    for split in ("train", "validation", "test"):
        labels = {r["label"] for r in _read(tmp_path / f"classification_{split}.jsonl")}
        assert labels == {0, 1, 2}, split


def test_deterministic_across_processes(tmp_path: Path) -> None:
    """Same bytes from two interpreters with different hash seeds: nothing depends on set order."""
    import os
    import subprocess
    import sys

    code = ("import sys; from pathlib import Path; from pz2.config import DataConfig, ModelConfig; "
            "from pz2.data.generate import generate; "
            "generate(DataConfig(per_category=120, include_real=True), ModelConfig().system_prompt, Path(sys.argv[1]))")
    for name, hash_seed in (("a", "1"), ("b", "2")):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run([sys.executable, "-c", code, str(tmp_path / name)], check=True, env=env, timeout=120)
    assert _bytes(tmp_path / "a") == _bytes(tmp_path / "b")
