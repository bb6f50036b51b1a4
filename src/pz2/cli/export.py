"""`pz2 export`: a merged full model, or the folder vLLM serves."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pz2.cli.common import _ws, app, console
from pz2.errors import UsageError


@app.command("export")
def export_cmd(
    ctx: typer.Context,
    merge: Annotated[bool, typer.Option("--merge", help="Fold the LoRA adapter into the base weights.")] = False,
    vllm: Annotated[bool, typer.Option("--vllm", help="The base and the three adapters, with the `vllm serve` command.")] = False,
    model: Annotated[Path | None, typer.Option(help="--merge: adapter folder (default: models/unified_model).")] = None,
    output: Annotated[Path | None, typer.Option(help="Where it goes (default: <model>/merged; --vllm: models/vllm).")] = None,
) -> None:
    """Write a merged full model (safetensors) for tools without LoRA support, or a folder vLLM serves.

    Example: [bold]pz2 export --merge --model finetuning/models/qna_specialist --output /tmp/qna-merged[/]
    [bold]pz2 export --vllm[/], then [bold]finetuning/models/vllm/serve.sh[/] on a GPU machine
    """
    from pz2.export import export_merged, export_vllm

    if merge == vllm:
        raise UsageError("choose one of `--merge` or `--vllm`")
    ws = _ws(ctx)
    if vllm:
        path = export_vllm(ws, ws.model_config(), output or ws.models / "vllm")
        console.print(f"base and adapters for vLLM written to {path}; serve them with {path / 'serve.sh'}")
        return
    model = model or ws.unified_model
    path = export_merged(ws.model_config(), model, output or model / "merged")
    console.print(f"merged model written to {path}")
