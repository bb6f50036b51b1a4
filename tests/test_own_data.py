"""Bring your own data: OpenAI `messages`, ShareGPT and Alpaca conversations in JSONL, JSON, Parquet, CSV or a
`save_to_disk` folder become the seed's files; a conversation trains with the loss on every assistant turn and
the same tokens the runtime builds for it; a user's files train a model, mixed with generated rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pz2.config import ModelConfig, ValidationConfig
from pz2.data.conversation import split_conversation
from pz2.data.jsonl import read_jsonl
from pz2.data.own_data import REPORT, Categories, import_conversations
from pz2.data.schema import SPLITS, FileKind
from pz2.data.validate import check_file
from pz2.errors import UsageError
from pz2.models.chat import IGNORE_INDEX, encode_example, prompt_ids
from pz2.training.sft_data import example_of

SYSTEM = "You answer in one short paragraph."


def conversations(n: int = 24) -> list[dict[str, Any]]:
    """Technical, qna and general conversations: every third multi-turn, every fourth with its own system message."""
    out = []
    for i in range(n):
        category = ("technical", "qna", "general")[i % 3]
        turns = [{"role": "user", "content": f"Question {i} about {category}: how do I use SketchUp's Follow Me?"},
                 {"role": "assistant", "content": f"Answer {i}: select the path, then the face, then Follow Me."}]
        if i % 3 == 0:
            turns += [{"role": "user", "content": f"And then, for case {i}?"},
                      {"role": "assistant", "content": f"Then press Enter to finish case {i}."}]
        if i % 4 == 0:
            turns = [{"role": "system", "content": SYSTEM}, *turns]
        out.append({"messages": turns, "topic": category})
    return out


def as_format(conv: dict[str, Any], fmt: str) -> dict[str, Any]:
    if fmt == "messages":
        return conv
    if fmt == "sharegpt":
        speaker = {"system": "system", "user": "human", "assistant": "gpt"}
        return {"conversations": [{"from": speaker[m["role"]], "value": m["content"]} for m in conv["messages"]],
                "topic": conv["topic"]}
    c = split_conversation(conv["messages"])
    row = {"instruction": c.user, "input": "", "output": c.answer, "topic": conv["topic"],
           "history": [[c.history[i]["content"], c.history[i + 1]["content"]] for i in range(0, len(c.history), 2)]}
    return {**row, "system": c.system or ""}


def write(rows: list[dict[str, Any]], folder: Path, filetype: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if filetype == "jsonl":
        path = folder / "mine.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path
    if filetype == "json":
        path = folder / "mine.json"
        path.write_text(json.dumps(rows))
        return path
    import datasets

    table = datasets.Dataset.from_list([{k: json.dumps(v) if filetype == "csv" and isinstance(v, list) else v
                                         for k, v in r.items()} for r in rows])
    if filetype == "parquet":
        table.to_parquet(str(folder / "mine.parquet"))
        return folder / "mine.parquet"
    if filetype == "csv":
        table.to_csv(str(folder / "mine.csv"), index=False)
        return folder / "mine.csv"
    table.save_to_disk(str(folder / "mine"))
    return folder / "mine"


def imported(out: Path, stem: str = "unified") -> list[dict[str, Any]]:
    return [r for split in SPLITS if (out / f"{stem}_{split}.jsonl").is_file() for r in read_jsonl(out / f"{stem}_{split}.jsonl")]


@pytest.fixture(scope="module")
def tokenizer(tiny_base: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_base)


@pytest.mark.parametrize("fmt", ["messages", "sharegpt", "alpaca"])
@pytest.mark.parametrize("filetype", ["jsonl", "json", "parquet", "csv", "disk"])
def test_each_format_and_file_type_round_trips_to_the_prompt_the_runtime_builds(
        fmt: str, filetype: str, tmp_path: Path, tokenizer) -> None:
    from pz2.serving.protocol import ChatCompletionRequest

    source = conversations()
    path = write([as_format(c, fmt) for c in source], tmp_path / "in", filetype)
    report = import_conversations(path, tmp_path / "out", "auto", Categories(column="topic"), "CC-BY-4.0",
                                  ValidationConfig())
    assert (report.format, report.detected, report.kept, report.dropped) == (fmt, True, len(source), {})
    rows = imported(tmp_path / "out")
    by_first = {r["messages"][int(r["messages"][0]["role"] == "system")]["content"]: r for r in rows}
    system_prompt = ModelConfig().system_prompt
    for conv in source:
        row = by_first[next(m["content"] for m in conv["messages"] if m["role"] == "user")]
        assert row["messages"] == conv["messages"]            # every turn, the system message kept, text as written
        assert (row["category"], row["license"]) == (conv["topic"], "CC-BY-4.0")
        # the runtime is asked the conversation without its last answer, over the OpenAI API
        options = ChatCompletionRequest(model="unified", messages=conv["messages"][:-1]).to_options(64, None)
        runtime = prompt_ids(tokenizer, options.system or system_prompt, conv["messages"][-2]["content"], options.history)
        encoded = encode_example(tokenizer, example_of(row, system_prompt), 1024)
        assert encoded["input_ids"][: len(runtime)] == runtime
        assert encoded["labels"][len(runtime) - 1] == IGNORE_INDEX and encoded["labels"][len(runtime)] != IGNORE_INDEX
        decoded = tokenizer.decode([t for t in encoded["labels"][len(runtime):] if t != IGNORE_INDEX],
                                   skip_special_tokens=True)
        assert decoded == conv["messages"][-1]["content"]
    report_file = json.loads((tmp_path / "out" / REPORT).read_text())
    assert report_file["kept"] == len(source) and report_file["format"] == fmt


def test_a_conversation_row_carries_loss_on_every_assistant_turn_and_nowhere_else(tokenizer) -> None:
    conv = [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": "How do I undo a commit?"}, {"role": "assistant", "content": "git reset --soft HEAD~1"},
            {"role": "user", "content": "Keep my changes?"}, {"role": "assistant", "content": "Yes, they stay staged."},
            {"role": "user", "content": "Thanks!"}, {"role": "assistant", "content": "You are welcome."}]
    encoded = encode_example(tokenizer, example_of({"messages": conv}, "unused"), 1024)
    ids, labels = encoded["input_ids"], encoded["labels"]
    spans, current = [], []
    for token, label in zip(ids, labels, strict=True):
        if label != IGNORE_INDEX:
            assert label == token
            current.append(token)
        elif current:
            spans.append(current)
            current = []
    spans += [current] if current else []
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert [tokenizer.decode(s[:-1]) for s in spans] == [m["content"] for m in conv if m["role"] == "assistant"]
    assert all(s[-1] == end for s in spans)                    # each turn learns to stop
    assert "system" in tokenizer.decode(ids) and SYSTEM in tokenizer.decode(ids)   # its own system message, not "unused"
    assert "unused" not in tokenizer.decode(ids)
    # a single-turn row is encoded exactly as before conversations existed: prompt masked, answer and its end labelled
    single = encode_example(tokenizer, example_of({"input_text": "How?", "target_text": "Like this."}, SYSTEM), 1024)
    prompt = prompt_ids(tokenizer, SYSTEM, "How?")
    assert single["labels"] == [IGNORE_INDEX] * len(prompt) + single["input_ids"][len(prompt):]
    assert single["input_ids"][-1] == end


def test_a_conversation_never_straddles_splits_and_its_split_is_stable(tmp_path: Path) -> None:
    source = conversations(120)   # and the same user turns again with another answer: one side only, reported
    source.append({"messages": [*source[3]["messages"][:-1], {"role": "assistant", "content": "Another answer."}],
                   "topic": "technical"})
    first = write(source, tmp_path / "a", "jsonl")
    second = write(list(reversed(source)), tmp_path / "b", "jsonl")
    for path, out, dropped in ((first, tmp_path / "out-a", "line 121"), (second, tmp_path / "out-b", "line 118")):
        report = import_conversations(path, out, "messages", Categories(column="topic"), None, ValidationConfig())
        assert report.kept == 120 and list(report.dropped.values()) == [[dropped]]
    split_of = {}
    for out in (tmp_path / "out-a", tmp_path / "out-b"):
        for split in SPLITS:
            for row in read_jsonl(out / f"unified_{split}.jsonl"):
                key = json.dumps(row["messages"])
                assert split_of.setdefault(key, split) == split   # the same split whatever the file order
    assert {s for s in split_of.values()} == set(SPLITS)
    for split in SPLITS:   # the classifier's rows follow their conversation's split: no question in two splits
        texts = {r["text"] for r in read_jsonl(tmp_path / "out-a" / f"classification_{split}.jsonl")}
        others = {r["text"] for s in SPLITS if s != split for r in read_jsonl(tmp_path / "out-a" / f"classification_{s}.jsonl")}
        assert texts and not texts & others


def test_what_is_dropped_is_reported_by_line_and_reason(tmp_path: Path) -> None:
    good = conversations(6)
    rows = [*good[:2],
            {"messages": [{"role": "user", "content": "Only a question?"}], "topic": "qna"},
            {"messages": [{"role": "tool", "content": "{}"}, {"role": "assistant", "content": "ok"}], "topic": "qna"},
            {"messages": good[2]["messages"], "topic": "weather"},
            {"messages": [{"role": "user", "content": "Hello there"}, {"role": "assistant", "content": "   "}], "topic": "general"},
            *good[3:]]
    path = write(rows, tmp_path, "jsonl")
    before = path.read_bytes()
    report = import_conversations(path, tmp_path / "out", "auto", Categories(column="topic"), None, ValidationConfig())
    assert report.kept == 5 and report.read == 9
    reasons = {tuple(v): k for k, v in report.dropped.items()}
    assert "assistant turn" in reasons[("line 3",)]
    assert "'tool'" in reasons[("line 4",)]
    assert "weather" in reasons[("line 5",)]
    assert "messages[2].content" in reasons[("line 6",)]
    assert path.read_bytes() == before                          # the input is never modified


def test_format_detection_and_its_refusal_of_an_unknown_shape(tmp_path: Path, cli) -> None:
    path = write([as_format(c, "sharegpt") for c in conversations(9)], tmp_path, "jsonl")
    result = cli("data", "import", str(path), "--category", "technical", "--output", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert "sharegpt (detected)" in " ".join(result.output.split())
    assert {r["category"] for r in imported(tmp_path / "out")} == {"technical"}
    odd = tmp_path / "odd.jsonl"
    odd.write_text('{"question": "q", "answer": "a"}\n')
    result = cli("data", "import", str(odd), "--category", "qna", "--output", str(tmp_path / "odd"))
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "cannot tell the format" in lines[0] and "question" in lines[0]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="did not write"):   # a folder of the user's is never replaced
        import_conversations(path, mine, "auto", Categories(fixed="qna"), None, ValidationConfig())


def test_the_validator_checks_conversations_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "unified_train.jsonl"
    rows = [conversations(1)[0] | {"category": "technical"},
            {"messages": [{"role": "user", "content": "a question"}, {"role": "user", "content": "again"}], "category": "qna"},
            {"messages": [{"role": "assistant", "content": "an answer first"}], "category": "qna"},
            {"messages": "not a list", "category": "qna"}]
    path.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "topic"}) + "\n" for r in rows))
    _, issues, _ = check_file(path, FileKind.UNIFIED, ValidationConfig(max_tokens=100), lambda texts: [len(t) for t in texts])
    errors = {(i.line, i.code) for i in issues if i.severity.value == "error"}
    assert errors == {(2, "turn_order"), (3, "turn_order"), (4, "wrong_type"), (1, "too_long_tokens")}


def test_a_model_trains_on_imported_rows_mixed_with_generated_ones(hybrid, tmp_path: Path) -> None:
    from conftest import SFT_FAST

    from pz2.config import SFTConfig
    from pz2.training.sft import train_sft

    path = write(conversations(60), tmp_path / "in", "jsonl")
    import_conversations(path, tmp_path / "mine", "auto", Categories(column="topic"), None, ValidationConfig())
    mine = tmp_path / "mine" / "unified_train.jsonl"
    result = train_sft(hybrid, "unified", SFTConfig(**{**SFT_FAST, "max_length": 160}), hybrid.model_config(),
                       output=tmp_path / "adapter", files=[mine], generated_share=0.25)
    data = json.loads((result.path / "manifest.json").read_text())["data"]
    generated = str(hybrid.datasets / "unified_train.jsonl")
    assert set(data) == {str(mine), str(tmp_path / "mine" / "unified_validation.jsonl"), generated}
    assert data[generated]["share"] == pytest.approx(0.25, abs=0.02) and data[str(mine)]["share"] == pytest.approx(0.75, abs=0.02)
    assert data[str(mine)]["rows"] == len(read_jsonl(mine)) and len(data[str(mine)]["sha256"]) == 64
    assert result.metrics["train_rows"] == data[str(mine)]["rows"] + data[generated]["rows"]
    assert (result.path / "adapter_model.safetensors").is_file()


def test_train_refuses_a_mix_it_cannot_follow_in_one_line(cli, tmp_path: Path) -> None:
    mine = tmp_path / "mine.jsonl"
    mine.write_text(json.dumps(conversations(1)[0]) + "\n")
    for args, expected in ((["--mix", "generated:0.3"], "name your files with --data"),
                           (["--data", str(mine), "--mix", "real:0.3"], "expected generated:SHARE"),
                           (["--data", str(mine), "--mix", "generated:1"], "expected generated:SHARE"),
                           (["--data", str(tmp_path / "absent.jsonl")], "no such file")):
        result = cli("train", "unified", *args)
        assert result.exit_code == 2 and expected in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1


def test_an_imported_test_split_is_evaluated_after_each_conversation_s_earlier_turns(hybrid, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pz2.cli import app
    from pz2.data.loading import reference_pairs
    from pz2.evaluation.eval_set import load_file

    path = write(conversations(60), tmp_path / "in", "jsonl")
    import_conversations(path, tmp_path / "mine", "auto", Categories(column="topic"), None, ValidationConfig())
    test = tmp_path / "mine" / "unified_test.jsonl"
    rows = read_jsonl(test)
    evaluated = load_file(test)
    pairs = reference_pairs(test, "configured", None)
    for row, e, (system, user, reference, history) in zip(rows, evaluated, pairs, strict=True):
        c = split_conversation(row["messages"])
        assert (e.question, e.references[0], e.history, e.system) == (c.user, c.answer, tuple(c.history), c.system)
        assert (system, user, reference, history) == (c.system or "configured", c.user, c.answer, tuple(c.history))
    assert any(e.history for e in evaluated) and any(e.system for e in evaluated)
    result = CliRunner().invoke(app, ["--workspace", str(hybrid.root), "eval", "generation", "--model",
                                      str(hybrid.unified_model), "--data", str(test), "--limit", "4",
                                      "--output", str(tmp_path / "eval")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert len(read_jsonl(tmp_path / "eval" / "predictions.jsonl")) == min(4, len(rows))
