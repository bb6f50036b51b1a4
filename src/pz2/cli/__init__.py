"""The `pz2` command line. Commands parse, call one library function, print, and pick the exit code.

Heavy libraries (torch, transformers) are imported inside commands so `pz2 --help` is instant.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated

import typer
from rich.table import Table

from pz2.cli import chat, classify, data, eval, export, kb, models, serve, train  # noqa: F401  (importing a module registers its commands)
from pz2.cli.common import _ws, app, console


@app.command()
def status(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False) -> None:
    """Show which datasets, models and checkpoints exist, with sizes, dates and metrics.

    Example: [bold]pz2 status --json[/]
    """
    from pz2 import status as st

    ws = _ws(ctx)
    entries = st.collect(ws, ws.model_config())
    if as_json:
        typer.echo(json.dumps(st.as_dicts(entries), ensure_ascii=False, indent=2))
        return
    table = Table(title=f"pz2 workspace {ws.root}")
    for col in ("kind", "name", "rows", "size", "modified", "metrics"):
        table.add_column(col)
    for e in entries:
        metrics = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in e.metrics.items()
                            if isinstance(v, (int, float, str)))
        table.add_row(e.group, e.name, "" if e.rows is None else str(e.rows), f"{e.size_bytes / 1e6:.1f} MB",
                      e.modified, metrics)
    console.print(table if entries else "nothing yet: run [bold]pz2 demo[/] or [bold]pz2 data generate[/]")


@app.command()
def demo(ctx: typer.Context, quick: Annotated[bool, typer.Option(
        "--quick", help="Stop once the fine-tuned unified model answers: data, base, unified model (minutes).")] = False,
) -> None:
    """Run the whole pipeline on the embedded default model: data, base, unified model, classifier, knowledge
    base, specialists, router, the seed's scenarios and measurements.

    Example: [bold]pz2 demo[/]   (a first look in minutes: [bold]pz2 demo --quick[/])
    """
    from pz2.demo import run_demo

    ok = run_demo(_ws(ctx), console, quick=quick)
    raise typer.Exit(code=0 if ok else 1)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `pz2` script and of `python -m pz2`."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never download weights or data at run time
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not sys.stderr.isatty():   # a log file gets lines, not the libraries' bars ("Loading weights: 0%|")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        app(args=argv, prog_name="pz2")
    except SystemExit as e:  # typer ends every run with SystemExit; scripts want the code back
        return e.code if isinstance(e.code, int) else 0 if e.code is None else 1
    return 0
