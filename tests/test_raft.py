"""RAFT rows: the specialists' training rows with retrieved passages, their validation, and training on them."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from pz2.config import (
    DataConfig,
    KnowledgeConfig,
    ModelConfig,
    RaftConfig,
    RaftPassages,
    RetrievalConfig,
    TrainingConfig,
)
from pz2.data.generate import topic_splits
from pz2.data.jsonl import read_jsonl
from pz2.data.schema import FileKind
from pz2.data.validate import check_file
from pz2.knowledge.build import build_knowledge
from pz2.knowledge.documents import bank_path
from pz2.knowledge.index import KnowledgeIndex
from pz2.knowledge.raft import bank_paths, cite, raft_rows
from pz2.models.sentence import SentenceEncoder
from pz2.workspace import Workspace


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    from transformers import AutoTokenizer

    from pz2.models.prepare import embedded_tokenizer_dir

    return AutoTokenizer.from_pretrained(embedded_tokenizer_dir(ModelConfig(cache_dir=tmp_path_factory.mktemp("c"))))


def test_citation_goes_at_the_end_of_the_first_line() -> None:
    assert cite("Here's how to do it:\n1. Step.", 2) == "Here's how to do it [2]:\n1. Step."
    assert cite("Gravity pulls masses together.\n\nMore.", 1) == "Gravity pulls masses together. [1]\n\nMore."


@pytest.mark.parametrize("split", ["train", "validation"])
def test_raft_rows_quote_the_oracle_and_training_distractors_only(small_data: Path, banks_kb, tokenizer, split: str) -> None:
    index, encoder = banks_kb
    rows = read_jsonl(small_data / f"dialogue_technical_{split}.jsonl")
    cfg = RaftConfig(passages=RaftPassages(technical=2), oracle_fraction=0.8, seed=1)
    out = raft_rows(rows, "technical", index, encoder, tokenizer, cfg, RetrievalConfig())
    assert len(out) == len(rows)
    paths, splits = bank_paths(), {bank_path(k): s for k, s in topic_splits(DataConfig()).items()}
    chunk_split = {c.path: c.split for c in index.chunks}
    with_oracle = 0
    for row, new in zip(rows, out, strict=True):
        assert new["input_text"] == row["input_text"] and len(new["passages"]) == 2
        oracle = paths[row["target_text"]]
        numbers = [n for n, p in enumerate(new["passages"], start=1) if p["path"] == oracle]
        if numbers:
            with_oracle += 1
            assert new["target_text"] == cite(row["target_text"], numbers[0])
        else:
            assert new["target_text"] == row["target_text"]          # distractors only: nothing to cite
        for p in new["passages"]:
            assert p["path"] == oracle or chunk_split[p["path"]] == "train"  # no held-out answer as a distractor
        if split != "train":
            assert splits[oracle] == split
    assert 0.65 <= with_oracle / len(rows) <= 0.95
    tokens = [len(tokenizer("\n".join(p["text"] for p in r["passages"]))["input_ids"]) for r in out]
    assert max(tokens) <= RetrievalConfig().max_passage_tokens + 8


def test_each_specialist_gets_its_own_number_of_passages(small_data: Path, banks_kb, tokenizer) -> None:
    index, encoder = banks_kb
    cfg = RaftConfig(passages=RaftPassages(qna=1, technical=3), oracle_fraction=0.5, seed=1)
    retrieval = RetrievalConfig(max_passage_tokens=4000)
    for kind, count in (("qna", 1), ("technical", 3)):
        rows = read_jsonl(small_data / f"dialogue_{kind}_train.jsonl")[:12]
        out = raft_rows(rows, kind, index, encoder, tokenizer, cfg, retrieval)
        assert {len(r["passages"]) for r in out} == {count}, kind
        assert sum(bool(re.search(r" \[[1-3]\]", r["target_text"])) for r in out) >= 3, kind   # oracle rows cite
    assert RaftConfig(passages=2).passages == RaftPassages(qna=2, technical=2)   # a config of one number for both


def test_a_conversation_row_is_grounded_on_its_last_user_turn(small_data: Path, banks_kb, tokenizer) -> None:
    """RAFT reads a conversation's last question and cites in its last answer; the single-turn row of the same
    question and answer gets the same passages and the same citation."""
    index, encoder = banks_kb
    single = read_jsonl(small_data / "dialogue_technical_train.jsonl")[:6]
    conversations = [{"messages": [{"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": "Hello!"}, {"role": "assistant", "content": "Hi, how can I help?"},
                                   {"role": "user", "content": r["input_text"]}, {"role": "assistant", "content": r["target_text"]}]}
                     for r in single]
    cfg = RaftConfig(passages=RaftPassages(technical=2), oracle_fraction=1.0, seed=1)
    plain = raft_rows(single, "technical", index, encoder, tokenizer, cfg, RetrievalConfig())
    grounded = raft_rows(conversations, "technical", index, encoder, tokenizer, cfg, RetrievalConfig())
    for row, conv, new in zip(plain, conversations, grounded, strict=True):
        assert new["passages"] == row["passages"]
        assert new["messages"][:-1] == conv["messages"][:-1]
        assert new["messages"][-1] == {"role": "assistant", "content": row["target_text"]}
    assert sum("[" in r["messages"][-1]["content"] for r in grounded) >= 4


def test_the_validator_checks_passages_and_citations(tmp_path: Path) -> None:
    good = {"input_text": "How do I trim?", "target_text": "Type TRIM [1].", "passages": [
        {"title": "AutoCAD: trim lines", "text": "Type TRIM (or TR).", "path": "banks:technical/AutoCAD:trim lines"}]}
    rows = [good,
            {**good, "passages": "not a list"},
            {**good, "input_text": "q2", "passages": [{"title": "t", "text": "", "path": "p"}]},
            {**good, "input_text": "q3", "target_text": "Type TRIM [3]."}]
    path = tmp_path / "dialogue_technical_train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    _, issues, _ = check_file(path, FileKind.DIALOGUE, TrainingConfig().validation)
    found = {(i.line, i.code) for i in issues}
    assert found == {(2, "passages_shape"), (3, "passages_shape"), (4, "citation_range")}
    assert "[3]" in next(i for i in issues if i.code == "citation_range").message()


def test_a_specialist_trains_on_raft_rows_when_the_knowledge_base_exists(hybrid: Workspace, tmp_path: Path) -> None:
    from conftest import SFT_FAST

    from pz2.config import SFTConfig
    from pz2.training.sft import train_sft

    encoder = SentenceEncoder.load(hybrid.model_config())
    build_knowledge(hybrid.knowledge, KnowledgeConfig(collections=["banks"]), TrainingConfig(), encoder)
    result = train_sft(hybrid, "qna", SFTConfig(**{**SFT_FAST, "max_length": 640}), hybrid.model_config(),
                       output=tmp_path / "qna", raft=RaftConfig())
    manifest = json.loads((result.path / "manifest.json").read_text())
    assert manifest["raft"] is True
    raft_train = hybrid.datasets / "raft" / "dialogue_qna_train.jsonl"
    assert manifest["data"][str(hybrid.datasets / "dialogue_qna_train.jsonl")]["share"] == 1.0   # what RAFT grounds
    rows = read_jsonl(raft_train)
    assert rows and all(len(r["passages"]) == RaftConfig().passages.qna for r in rows)
    assert sum("[1]" in r["target_text"] for r in rows) > len(rows) / 2
    from transformers import AutoTokenizer

    from pz2.config import ValidationConfig
    from pz2.errors import DatasetError
    from pz2.training.sft_data import raft_rows_for, training_rows

    tokenizer = AutoTokenizer.from_pretrained(hybrid.model_config().base_model)
    with pytest.raises(DatasetError, match=r"dialogue_qna_train\.jsonl:1"):   # the limits passed down, not the YAML's
        raft_rows_for(hybrid, "qna", training_rows(hybrid, "qna"), RaftConfig(), hybrid.model_config(), tokenizer,
                      ValidationConfig(max_chars=50))


def test_without_a_knowledge_base_a_specialist_trains_on_plain_rows(hybrid: Workspace, tmp_path: Path) -> None:
    from conftest import SFT_FAST

    from pz2.config import SFTConfig
    from pz2.training.sft import train_sft

    shutil.rmtree(hybrid.knowledge, ignore_errors=True)
    result = train_sft(hybrid, "technical", SFTConfig(**SFT_FAST), hybrid.model_config(), output=tmp_path / "t",
                       raft=RaftConfig())
    assert json.loads((result.path / "manifest.json").read_text())["raft"] is False
    assert not (hybrid.datasets / "raft").exists()


@pytest.mark.integration
def test_sheet_rows_come_from_training_sheets_and_quote_their_command(tmp_path_factory, tokenizer) -> None:
    from pz2.data.real import split_of
    from pz2.knowledge.raft import sheet_examples, sheet_rows

    encoder = SentenceEncoder.load(ModelConfig(cache_dir=tmp_path_factory.mktemp("cache")))
    folder = tmp_path_factory.mktemp("kb-cheat") / "knowledge"
    build_knowledge(folder, KnowledgeConfig(collections=["cheat"]), TrainingConfig(), encoder)
    index = KnowledgeIndex.load(folder)
    assert {c.split for c in index.chunks} >= {"train", "test"}
    examples = sheet_examples(index)
    assert len(examples) > 200
    for question, answer, chunk in examples:
        assert question.startswith("How do I ") and question.endswith("?")
        assert split_of(chunk.path) == "train" and answer.split("\n", 1)[1] in chunk.text
    tar = [a for q, a, c in examples if c.path == "cheat:tar"]
    assert tar == [], "tar is a held-out sheet: `pz2 eval kb` asks about it"
    rows = sheet_rows(index, encoder, tokenizer, RaftConfig(sheet_rows=40, passages=RaftPassages(technical=2)),
                      RetrievalConfig())
    assert len(rows) == 40 and all(len(r["passages"]) == 2 for r in rows)
    cited_rows = [r for r in rows if "[1]" in r["target_text"] or "[2]" in r["target_text"]]
    assert len(cited_rows) > 20
    for r in cited_rows:
        n = 1 if "[1]" in r["target_text"] else 2
        command = r["target_text"].split("\n", 1)[1]
        assert command in r["passages"][n - 1]["text"]            # the cited passage holds the command
    assert all(split_of(p["path"]) == "train" for r in rows for p in r["passages"])
