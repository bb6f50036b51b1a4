"""A user's mistakes end in one line and an exit code, nothing is accepted silently, nothing is lost."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

from pz2.cli import app
from pz2.cli.chat import MENU, menu_args
from pz2.workspace import Workspace


def _parse(root: Path, args: list[str]) -> str:
    """Parse `pz2 --workspace ROOT ARGS` down to its command as the real app does, without running
    anything; returns the command's path ("pz2 eval classifier"). Menu entries name commands first,
    options after, so a group's sub-command is the next word."""
    command = typer.main.get_command(app)
    ctx = command.make_context("pz2", ["--workspace", str(root)])
    while isinstance(command, TyperGroup):
        name, *args = args
        command = command.get_command(ctx, name)
        assert command is not None, f"no command {name}"
        ctx = command.make_context(name, list(args), parent=ctx)
    return ctx.command_path


@pytest.mark.parametrize("key", [key for key, _, _ in MENU])
def test_every_menu_entry_is_a_valid_command(key: str, tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "finetuning")
    commands = next(cmds for k, _, cmds in MENU if k == key)
    for command in commands:
        args = menu_args(command, ws, "quick")
        assert "{" not in " ".join(args), args
        words = [a for a in args if not a.startswith("-")]
        path = _parse(ws.root, args)
        assert path.split()[1:] == words[: len(path.split()) - 1]


def test_the_parser_does_refuse_a_command_missing_its_argument() -> None:
    with pytest.raises(typer.BadParameter, match="data"):
        _parse(Path("finetuning"), ["eval", "classifier"])


# ---------------------------------------------------------------- helpers

def _run(ws: Workspace, *args: str):
    return CliRunner().invoke(app, ["--workspace", str(ws.root), *args], catch_exceptions=False)


def _one_line_error(result, *needles: str, code: int = 1) -> str:
    """The run failed with `code` and one red line holding every needle, no traceback."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, result.output
    message = " ".join(result.output.split())  # rich wraps long lines
    for needle in needles:
        assert needle in message, (needle, result.output)
    return message


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- 2. one reader for model artefacts

BROKEN = {  # what breaks -> (file under the workspace, how)
    "classifier meta truncated": ("models/unified_model/classifier/pz2_classifier.json", "truncate"),
    "classifier meta partial": ("models/unified_model/classifier/pz2_classifier.json", "partial"),
    "classifier tokenizer missing": ("models/unified_model/classifier/tokenizer.json", "tokenizer"),
    "unified manifest truncated": ("models/unified_model/adapter/manifest.json", "truncate"),
    "unified adapter config truncated": ("models/unified_model/adapter/adapter_config.json", "truncate"),
}


def _break(ws: Workspace, relative: str, how: str) -> Path:
    path = ws.root / relative
    if how == "truncate":
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    elif how == "partial":
        path.write_text('{"labels": ["qna", "technical", "general"]}')
    else:
        for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
            (path.parent / name).unlink(missing_ok=True)
    return path


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_artefact_is_one_line_in_every_command_and_status_survives_it(case: str, hybrid: Workspace) -> None:
    relative, how = BROKEN[case]
    path = _break(hybrid, relative, how)
    name = path.parent.name if how == "tokenizer" else path.name
    chat = _run(hybrid, "chat", "--text", "How do I trim lines in AutoCAD?", "--json")
    _one_line_error(chat, name)
    if "classifier" in relative:
        _one_line_error(_run(hybrid, "classify", "hello"), name)
        data = hybrid.datasets / "classification_test.jsonl"
        _one_line_error(_run(hybrid, "eval", "classifier", "--data", str(data)), name)
    else:
        _one_line_error(_run(hybrid, "export", "--vllm", "--output", str(hybrid.root / "vllm")), name)
        assert not (hybrid.root / "vllm").exists()
    status = _run(hybrid, "status", "--json")
    assert status.exit_code == 0, status.output


def test_a_broken_confidence_fit_leaves_chat_running_and_status_says_so(hybrid: Workspace) -> None:
    import json

    (hybrid.unified_model / "confidence.json").write_text('{"weights": [1, 2')
    chat = _run(hybrid, "chat", "--text", "hello", "--json")
    assert chat.exit_code == 0, chat.output
    entries = json.loads(_run(hybrid, "status", "--json").stdout)
    confidence = next(e for e in entries if e["name"] == "unified_model/confidence (router)")
    assert "confidence.json: not valid JSON" in confidence["metrics"]["error"]


def test_a_gguf_of_an_architecture_llama_cpp_cannot_load_is_one_line(hybrid: Workspace, tmp_path: Path) -> None:
    import gguf
    import yaml

    odd = tmp_path / "odd.gguf"
    writer = gguf.GGUFWriter(str(odd), arch="no-such-arch")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    config = hybrid.configs / "model_config.yaml"
    cfg = yaml.safe_load(config.read_text())
    cfg["runtime"]["engine"]["gguf_model"] = str(odd)
    config.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    _one_line_error(_run(hybrid, "chat", "--text", "hello"), "odd.gguf", "llama.cpp cannot load it")


def test_a_hub_id_that_is_not_cached_is_one_line(workspace: Workspace) -> None:
    import yaml

    config = workspace.configs / "model_config.yaml"
    cfg = yaml.safe_load(config.read_text())
    cfg["base_model"] = "nobody-here/no-such-model"
    config.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    generate_result = _run(workspace, "data", "generate", "--per-category", "20")
    assert generate_result.exit_code == 0, generate_result.output
    _one_line_error(_run(workspace, "data", "validate"), "nobody-here/no-such-model", "pz2 never downloads")


def test_an_unwritable_output_is_one_line(hybrid: Workspace, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "hello"}\n')
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = _run(hybrid, "classify", "--input", str(source), "--output", str(blocker / "out.jsonl"))
    _one_line_error(result, "a_file")


# ---------------------------------------------------------------- 3. no silent acceptance

def test_a_named_file_of_no_known_kind_is_refused_unless_its_kind_is_given(workspace: Workspace, tmp_path: Path) -> None:
    from pz2.config import DataConfig, ModelConfig
    from pz2.data.generate import generate

    generate(DataConfig(per_category=20), ModelConfig().system_prompt, workspace.datasets)
    mine = tmp_path / "my_rows.jsonl"
    mine.write_bytes((workspace.datasets / "unified_train.jsonl").read_bytes())
    before = mine.read_bytes()
    _one_line_error(_run(workspace, "data", "validate", str(mine), "--no-tokens"), "my_rows.jsonl", "--kind", code=2)
    ok = _run(workspace, "data", "validate", str(mine), "--no-tokens", "--kind", "unified")
    assert ok.exit_code == 0, ok.output
    wrong = _run(workspace, "data", "validate", str(mine), "--no-tokens", "--kind", "classification")
    assert wrong.exit_code == 1 and "required field `text` is missing" in wrong.output
    assert mine.read_bytes() == before


def test_a_workspace_that_does_not_exist_or_lacks_its_configs_is_an_error(workspace: Workspace, tmp_path: Path) -> None:
    missing = CliRunner().invoke(app, ["--workspace", str(tmp_path / "nowhere"), "status"])
    _one_line_error(missing, "nowhere", "no such workspace folder", code=2)
    assert not (tmp_path / "nowhere").exists()
    (workspace.configs / "training_config.yaml").unlink()
    _one_line_error(_run(workspace, "data", "generate"), "training_config.yaml", "missing")
    assert not workspace.datasets.exists()
    assert CliRunner().invoke(app, ["--workspace", str(tmp_path / "nowhere"), "data", "generate", "--help"]).exit_code == 0


@pytest.mark.parametrize(("row", "needle"), [
    ('{"text": "What is DNS?", "expert": "false"}', "field `expert` must be true or false, got 'false'"),
    ('{"text": "What is DNS?", "expert": 1}', "field `expert` must be true or false, got 1"),
    ('{"text": "What is DNS?", "session": 7}', "field `session` must be a string, got 7"),
])
def test_batch_fields_are_strict(confident_ws: Workspace, tmp_path: Path, row: str, needle: str) -> None:
    source, target = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text('{"text": "hello"}\n' + row + "\n")
    before = source.read_bytes()
    _one_line_error(_run(confident_ws, "chat", "--input", str(source), "--output", str(target)), "in.jsonl:2", needle)
    assert not target.exists() and not target.with_name("out.jsonl.partial").exists()
    assert source.read_bytes() == before


def test_classify_refuses_to_write_over_its_input(hybrid: Workspace, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "hello"}\n')
    before = source.read_bytes()
    _one_line_error(_run(hybrid, "classify", "--input", str(source), "--output", str(source)), "inputs are never modified",
                    code=2)
    assert source.read_bytes() == before


def test_expert_mode_is_offered_only_where_someone_can_accept(confident_ws: Workspace) -> None:
    import json

    from pz2.runtime.assistant import Assistant
    from pz2.runtime.turn import Options

    message = "SketchUp에서 복잡한 곡면 모델링하는 고급 기법을 알려줘"   # scenario 2: offered in a chat
    assistant = Assistant.from_config(confident_ws, confident_ws.model_config(), log=False)
    try:
        assert assistant.ask(message, session="chat").route == "offer"
        batch_like = assistant.ask(message, session="batch", options=Options(offers=False))
    finally:
        assistant.close()
    assert (batch_like.route, batch_like.reason, batch_like.offer) == ("specialist", "partly_read", None)
    single = _run(confident_ws, "chat", "--text", message, "--json")
    assert single.exit_code == 0, single.output
    assert json.loads(single.output.strip().splitlines()[-1])["route"] != "offer"


# ---------------------------------------------------------------- 4. writes that cannot lose data

def test_atomic_directory_never_leaves_the_target_missing_and_writers_do_not_collide(tmp_path: Path) -> None:
    import threading

    from pz2.fileio import atomic_directory

    target = tmp_path / "model"
    with atomic_directory(target) as tmp:
        (tmp / "weights").write_text("0")
    seen_missing, stop = [], threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if not (target / "weights").is_file():
                seen_missing.append(1)

    def write(n: int) -> None:
        for i in range(30):
            with atomic_directory(target) as tmp:
                (tmp / "weights").write_text(f"{n}-{i}")

    watcher = threading.Thread(target=watch)
    watcher.start()
    writers = [threading.Thread(target=write, args=(n,)) for n in range(3)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    stop.set()
    watcher.join()
    assert not seen_missing, f"the target was missing {len(seen_missing)} times"
    assert (target / "weights").read_text().endswith("-29")
    assert [p.name for p in tmp_path.iterdir()] == ["model"], "no temporary folder is left behind"


def test_a_batch_that_fails_half_way_keeps_the_answered_rows(confident_ws: Workspace, tmp_path: Path) -> None:
    import json

    source, target = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text('{"text": "hello"}\n{"text": "I feel sad today"}\n{"text": "%s"}\n' % ("word " * 2500))
    failed = _run(confident_ws, "chat", "--input", str(source), "--output", str(target))
    _one_line_error(failed, "in.jsonl:3", "context")
    assert not target.exists(), "the output appears only complete"
    kept = [json.loads(line) for line in target.with_name("out.jsonl.partial").read_text().splitlines()]
    assert [row["text"] for row in kept] == ["hello", "I feel sad today"]


# ---------------------------------------------------------------- 10. input the model cannot read

@pytest.mark.parametrize(("message", "reply"), [
    ("오늘 날씨 어때?", "질문을 영어로"), ("🙂🙂🙂", "in English"), ("今何時ですか？", "in English"),
])
def test_a_message_without_english_gets_an_honest_reply_in_its_script(confident_ws: Workspace, message: str,
                                                                        reply: str) -> None:
    import json

    result = _run(confident_ws, "chat", "--text", message, "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.output.strip().splitlines()[-1])
    assert (record["route"], record["reason"]) == ("unified", "unreadable_input")
    assert reply in record["answer"]


def test_a_multilingual_base_answers_such_a_message_itself(hybrid: Workspace) -> None:
    import json

    import yaml

    config = hybrid.configs / "model_config.yaml"
    cfg = yaml.safe_load(config.read_text())
    cfg["runtime"]["english_only"] = False
    config.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    result = _run(hybrid, "chat", "--text", "오늘 날씨 어때?", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["reason"] == "general"
