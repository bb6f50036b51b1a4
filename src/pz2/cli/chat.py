"""`pz2 chat` and `pz2 ft`: the hybrid assistant in a terminal, and the fine-tuning menu."""

from __future__ import annotations

import json
import subprocess
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from pz2.cli.common import _ws, app, console, err_console
from pz2.errors import DatasetError, Pz2Error, UsageError
from pz2.views import source_lines
from pz2.workspace import Workspace

HELP = ("[bold]/expert[/] [text]  specialist for the next message (or for text)   [bold]/status[/]  models and pool\n"
        "[bold]/sources[/]  the last answer's passages   [bold]/good[/] [bold]/bad[/] [comment]  rate the last answer   "
        "[bold]/ft[/]  fine-tuning menu   [bold]/help[/]  this help   [bold]/quit[/]  leave")
RATE = {"/good": "good", "/bad": "bad"}
DECLINES = {"no", "n", "nope", "no thanks", "아니요", "아니", "아뇨", "괜찮아요", "됐어요"}


class Mode(str, Enum):
    interactive = "interactive"
    single = "single"
    batch = "batch"


def routing_line(turn: Any) -> str:
    return f"[dim]{escape(turn.summary())}[/]"


def print_footer(out: Console, turn: Any) -> None:
    """Under an answer: the sources it was given (cited or not), then its routing record."""
    if turn.sources:
        out.print("[dim]sources:[/]")
        for line in source_lines(turn.sources):
            out.print(line, soft_wrap=True)
    if turn.shortened:
        out.print("[dim](shortened: the answer reached its length budget and ends at its last complete sentence)[/]")
    out.print(routing_line(turn), soft_wrap=True)


def print_sources(out: Console, turn: Any) -> None:
    """`/sources`: the passages the last answer was given, with their text."""
    if turn is None or not turn.sources:
        out.print("[dim]the last answer had no sources[/]")
        return
    for passage, line in zip(turn.passages, source_lines(turn.sources), strict=True):
        out.print(line, soft_wrap=True)
        out.print(escape(passage.text), highlight=False)


class _Screen:
    """Streams answer pieces under a label naming the model that writes them."""

    def __init__(self, out: Console) -> None:
        self.out, self.source = out, None

    def __call__(self, source: str, piece: str) -> None:
        if source != self.source:
            label = "assistant" if source == "unified" else f"{source} specialist"
            self.out.print(f"{'' if self.source is None else chr(10)}[bold cyan]{label} ▸[/] ", end="")
            self.source = source
        self.out.file.write(piece)
        self.out.file.flush()

    def end(self) -> None:
        if self.source is not None:
            self.out.print()
        self.source = None


def _ask_line(out: Console, prompt: str) -> str | None:
    try:
        return out.input(prompt)
    except (EOFError, KeyboardInterrupt):
        return None


def interactive(assistant: Any, ws: Workspace, out: Console, session: str = "terminal") -> None:
    out.print(f"[bold]pz2 hybrid assistant[/] · engine {assistant.engine.name} · {HELP}")
    screen = _Screen(out)
    expert_next = False
    last = None
    while True:
        line = _ask_line(out, "[bold green]you ▸[/] ")
        if line is None or line.strip() in ("/quit", "/exit", "/q"):
            out.print("bye")
            return
        text = line.strip()
        if not text:
            continue
        if text == "/help":
            out.print(HELP)
            continue
        if text == "/status":
            out.print_json(json.dumps(assistant.status(), ensure_ascii=False, default=str))
            continue
        if text == "/ft":
            finetune_menu(ws, out)
            continue
        if text == "/sources":
            print_sources(out, last)
            continue
        if text.split()[0] in RATE:
            rate(assistant, out, last, RATE[text.split()[0]], text.partition(" ")[2].strip() or None)
            continue
        if text.startswith("/expert"):
            text = text[len("/expert"):].strip()
            if not text and not assistant.session(session).last:
                expert_next = True
                out.print("[dim]expert mode for your next message[/]")
                continue
            expert_next = True
        elif text.startswith("/"):
            out.print(f"unknown command {text.split()[0]}; {HELP}")
            continue
        if assistant.pending_offer(session) and text.lower().strip(" .!") in DECLINES:
            assistant.decline(session)
            out.print("[dim]ok, keeping the quick answer[/]")
            continue
        try:
            turn = assistant.ask(text, session=session, expert=expert_next, on_text=screen)
        except Pz2Error as e:  # one bad turn (a message longer than the context) must not end the chat
            screen.end()
            out.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False)
            continue
        finally:
            expert_next = False
        screen.end()
        last = turn
        if not turn.answer:
            out.print("[dim](empty answer)[/]")
        print_footer(out, turn)
        if turn.offer:
            out.print(f"[bold yellow]{turn.offer}[/] [dim](yes / 네 · no)[/]")


def rate(assistant: Any, out: Console, last: Any, rating: str, comment: str | None) -> None:
    """`/good`, `/bad`: the person's rating of the last answer, for the router's next fit
    (`pz2 train confidence --feedback`) and preference pairs (`pz2 data feedback`)."""
    if last is None:
        out.print("[dim]nothing to rate yet: ask something first[/]")
        return
    assistant.feedback(last.id, rating, "command", comment)
    out.print(f"[dim]thanks: the last answer is rated {rating} ({assistant.feedback_log.path if assistant.feedback_log else 'not logged'})[/]")


def batch(assistant: Any, source: Path, target: Path) -> int:
    """JSONL in (text or input_text, optional session and expert), JSONL out with answer and routing.

    Every row is checked before the first is answered; answers reach `<target>.partial` one by one
    (a crash keeps those), which becomes `target` when all are done. Nobody can accept an expert-mode
    offer here, so a low-confidence answer escalates instead."""
    from pz2.data.jsonl import iter_jsonl
    from pz2.fileio import distinct_output, growing_file
    from pz2.runtime.turn import Options

    distinct_output(source, target)
    rows = []
    for line, row in iter_jsonl(source):
        text = row.get("text", row.get("input_text"))
        if not isinstance(text, str):
            raise DatasetError(source, line, "needs a string field `text` or `input_text`")
        if not isinstance(row.get("expert", False), bool):
            raise DatasetError(source, line, f"field `expert` must be true or false, got {row['expert']!r}")
        if not isinstance(row.get("session", ""), str):
            raise DatasetError(source, line, f"field `session` must be a string, got {row['session']!r}")
        rows.append((line, text, row))
    with growing_file(target) as out:
        for line, text, row in rows:
            try:
                turn = assistant.ask(text, session=row.get("session", "batch"), expert=row.get("expert", False),
                                     options=Options(offers=False))
            except Pz2Error as e:
                raise DatasetError(source, line, str(e)) from None
            out.write(json.dumps({**row, "answer": turn.answer, "routing": turn.record()}, ensure_ascii=False) + "\n")
    return len(rows)


@app.command()
def chat(
    ctx: typer.Context,
    mode: Annotated[Mode | None, typer.Option(help="interactive (default), single (--text) or batch (--input/--output).")] = None,
    text: Annotated[str | None, typer.Option("--text", "-t", help="Single mode: the one message to answer.")] = None,
    input: Annotated[Path | None, typer.Option("--input", "-i", help="Batch mode: JSONL with `text` per line.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Batch mode: JSONL written with answers and routing.")] = None,
    expert: Annotated[bool, typer.Option("--expert", help="Send to the specialist (the /expert command).")] = False,
    engine: Annotated[str | None, typer.Option(help="llamacpp, transformers or openai (config: runtime.engine.backend).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Single mode: print the routing record as JSON.")] = False,
) -> None:
    """Talk to the hybrid assistant: the unified model answers, specialists step in when needed.

    Example: [bold]pz2 chat[/]   [bold]pz2 chat --text "How to draw a line in CAD software?"[/]
    [bold]pz2 chat --input questions.jsonl --output answers.jsonl[/]
    """
    from pz2.runtime.assistant import Assistant
    from pz2.runtime.turn import Options

    if text is not None and not text.strip():
        raise UsageError("--text is empty: give the message to answer, or leave --text out for the interactive chat")
    mode = mode or (Mode.batch if input else Mode.single if text else Mode.interactive)
    if mode is Mode.single and not text:
        raise UsageError("single mode needs --text \"your message\"")
    if mode is Mode.batch and (input is None or output is None):
        raise UsageError("batch mode needs --input FILE.jsonl and --output FILE.jsonl")
    if mode is Mode.batch and not input.is_file():
        raise UsageError(f"{input}: no such file")
    ws = _ws(ctx)
    assistant = Assistant.from_config(ws, ws.model_config({"runtime.engine.backend": engine}))
    try:
        if mode is Mode.interactive:
            interactive(assistant, ws, console)
        elif mode is Mode.single:
            turn = assistant.ask(text, session="single", expert=expert, on_text=None if as_json else _Screen(console),
                                 options=Options(offers=False))
            if as_json:
                typer.echo(json.dumps(turn.record(), ensure_ascii=False))
            else:
                console.print()
                print_footer(console, turn)
        else:
            n = batch(assistant, input, output)
            err_console.print(f"{n} answers with their routing written to {output}")
    finally:
        assistant.close()


# ---------------------------------------------------------------- the seed's fine-tuning menu

MENU: list[tuple[str, str, list[list[str]]]] = [
    ("1", "status: datasets, models, checkpoints", [["status"]]),
    ("2", "generate the English datasets", [["data", "generate"]]),
    ("3", "validate the datasets", [["data", "validate"]]),
    ("4", "import human-written data (chitchat, chatterbot)", [["data", "import"]]),
    ("5", "train the conversation-type classifier", [["train", "classifier"]]),
    ("6", "train the QnA specialist", [["train", "specialist", "--type", "qna", "--profile", "{profile}"]]),
    ("7", "train the technical specialist", [["train", "specialist", "--type", "technical", "--profile", "{profile}"]]),
    ("8", "train the unified model", [["train", "unified", "--profile", "{profile}"]]),
    ("9", "unified model, start to finish: generate, validate, train (simple, fast)",
     [["data", "generate"], ["data", "validate"], ["train", "unified", "--profile", "{profile}"]]),
    ("10", "fit the confidence model (router)", [["train", "confidence"]]),
    ("11", "evaluate: classifier and unified model",
     [["eval", "classifier", "--data", "{datasets}/classification_test.jsonl"], ["eval", "generation", "--limit", "50"]]),
    ("12", "compare hybrid, separated and unified (quality, speed, memory, routing curve)",
     [["eval", "compare", "--limit", "10"]]),
    ("13", "build the knowledge base the specialists answer from", [["kb", "build"]]),
    ("14", "evaluate the specialists with and without the knowledge base", [["eval", "kb", "--models", "specialists"]]),
]


def menu_args(command: list[str], ws: Workspace, profile: str) -> list[str]:
    """One menu command with its placeholders filled: the workspace's datasets, the chosen profile."""
    return [part.replace("{profile}", profile).replace("{datasets}", str(ws.datasets)) for part in command]


def finetune_menu(ws: Workspace, out: Console) -> None:
    """Each choice runs `pz2 …` in a child process: its progress shows, and a failure returns here."""
    while True:
        out.print("\n[bold]fine-tuning menu[/] (파인튜닝 관리)")
        for key, label, _ in MENU:
            out.print(f"  {key:>2}. {label}")
        out.print("   0. back")
        choice = _ask_line(out, "choice ▸ ")
        if choice is None or choice.strip() in ("0", "q", "/quit", ""):
            return
        entry = next((m for m in MENU if m[0] == choice.strip()), None)
        if entry is None:
            out.print(f"no choice {choice.strip()!r}")
            continue
        profile = "quick"
        if any("{profile}" in part for cmd in entry[2] for part in cmd):
            profile = (_ask_line(out, "profile, quick or full [quick] ▸ ") or "").strip() or "quick"
        for command in entry[2]:
            args = menu_args(command, ws, profile)
            out.print(f"[dim]$ pz2 {' '.join(args)}[/]")
            code = subprocess.call([sys.executable, "-m", "pz2", "--workspace", str(ws.root), *args])
            if code != 0:
                out.print(f"[red]pz2 {' '.join(args)} exited with {code}[/]")
                break


@app.command("ft")
def ft(ctx: typer.Context) -> None:
    """The seed's fine-tuning menu: status, generate, validate, train, evaluate (also `/ft` in chat).

    Example: [bold]pz2 ft[/]   (Windows: [bold]run_finetuning.bat[/])
    """
    finetune_menu(_ws(ctx), console)
