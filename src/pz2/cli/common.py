"""What every command module shares: the app, its error handling, the workspace option."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from typer.core import TyperGroup

from pz2.errors import Pz2Error, UsageError
from pz2.workspace import Workspace

console = Console()
err_console = Console(stderr=True)


class _Pz2Group(TyperGroup):
    """Turns a library error into one red line and an exit code: 2 for usage, 1 otherwise."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Pz2Error as e:
            _fail(str(e), 2 if isinstance(e, UsageError) else 1)
        except OSError as e:  # an unwritable output, a full disk, a permission: the system's words, one line
            where = f"{e.filename}: " if e.filename else ""
            _fail(f"{where}{e.strerror or e}", 1)


def _fail(message: str, code: int) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False, soft_wrap=True)
    raise typer.Exit(code=code) from None


app = typer.Typer(
    cls=_Pz2Group,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    help="pz2: fine-tune and serve a hybrid assistant.\n\nExample: [bold]pz2 demo[/]",
)
data_app = typer.Typer(no_args_is_help=True, help="Generate, import and validate datasets; export preference pairs from feedback.")
models_app = typer.Typer(no_args_is_help=True, help="Prepare the embedded default models.")
train_app = typer.Typer(no_args_is_help=True, help="Fine-tune the classifier, the unified model and the specialists.")
eval_app = typer.Typer(no_args_is_help=True, help="Evaluate trained models.")
kb_app = typer.Typer(no_args_is_help=True, help="Build and search the knowledge base the specialists answer from.")
app.add_typer(data_app, name="data")
app.add_typer(models_app, name="models")
app.add_typer(train_app, name="train")
app.add_typer(eval_app, name="eval")
app.add_typer(kb_app, name="kb")


def _ws(ctx: typer.Context) -> Workspace:
    """The workspace a command works in, checked when the command needs it (so `--help` works anywhere)."""
    return ctx.find_root().obj.check()


def classifier_dir(ctx: typer.Context, model: Path | None) -> Path:
    """`--model`, else the workspace's classifier."""
    return model or _ws(ctx).classifier


@app.callback()
def _root(
    ctx: typer.Context,
    workspace: Annotated[Path, typer.Option(envvar="PZ2_WORKSPACE", help="The seed's finetuning/ folder.")] = Path("finetuning"),
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show library log lines.")] = False,
) -> None:
    level = logging.INFO if verbose else logging.WARNING
    # the handler filters too: a library that lowers its own logger's level (bm25s sets DEBUG) stays quiet
    logging.basicConfig(level=level, format="%(message)s",
                        handlers=[RichHandler(console=err_console, show_path=False, level=level)], force=True)
    ctx.obj = Workspace(workspace)
