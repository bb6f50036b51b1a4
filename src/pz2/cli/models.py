"""`pz2 models …`: prepare the embedded base."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pz2.cli.common import _ws, console, models_app


@models_app.command("prepare")
def models_prepare(
    ctx: typer.Context,
    force: Annotated[bool, typer.Option(help="Convert again even if a current conversion exists.")] = False,
    cache_dir: Annotated[Path | None, typer.Option(help="Cache folder (config: cache_dir).")] = None,
) -> None:
    """Convert the embedded SmolLM2 GGUF base to float32 safetensors, once (about 25 s; later about 0 s).

    Example: [bold]pz2 models prepare[/]
    """
    from pz2.models.prepare import prepare_base

    cfg = _ws(ctx).model_config({"cache_dir": cache_dir and str(cache_dir)})
    with console.status("preparing the embedded base model (first time about 25 s) ..."):
        prepared = prepare_base(cfg, force=force)
    how = "reused" if prepared.cached else "converted"
    console.print(f"base model {how} in {prepared.seconds:.1f} s: {prepared.path}")
