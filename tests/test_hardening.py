"""A user's mistakes end in one line and an exit code, nothing is accepted silently, nothing is lost."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.core import TyperGroup

from pz2.cli import app
from pz2.cli.assistant import MENU, menu_args
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
