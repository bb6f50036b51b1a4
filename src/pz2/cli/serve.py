"""`pz2 serve`: the hybrid assistant over an OpenAI-compatible HTTP API, with a web chat page."""

from __future__ import annotations

from typing import Annotated

import typer

from pz2.cli.common import _ws, app, err_console

API_KEY_ENV = "PZ2_API_KEY"


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Address to bind (config: runtime.serving.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (config: runtime.serving.port).")] = None,
    api_key: Annotated[str | None, typer.Option(
        "--api-key", envvar=API_KEY_ENV, show_envvar=True,
        help="Bearer key the /v1 routes ask for (config: runtime.serving.api_key).")] = None,
    engine: Annotated[str | None, typer.Option(
        help="llamacpp, transformers or openai (config: runtime.engine.backend).")] = None,
) -> None:
    """Serve the assistant: OpenAI-compatible /v1/chat/completions and /v1/models, /health, /metrics,
    and the web chat at /.

    Example: [bold]pz2 serve[/], then open http://127.0.0.1:8000/
    """
    import uvicorn

    from pz2.models.served import base_name
    from pz2.runtime.assistant import Assistant
    from pz2.serving.app import create_app, exposure_warning

    ws = _ws(ctx)
    overrides = {"runtime.engine.backend": engine, "runtime.serving.host": host, "runtime.serving.port": port}
    cfg = ws.model_config(overrides)
    serving = cfg.runtime.serving
    key = api_key or serving.api_key
    warning = exposure_warning(serving.host, key)
    if warning:
        err_console.print(f"[bold yellow]warning:[/] {warning}")
    api = create_app(lambda: Assistant.from_config(ws, cfg), serving, base_name(cfg), key)
    err_console.print(f"pz2 serve: http://{serving.host}:{serving.port}/ (the assistant loads in the background; "
                      "/health says when it is ready)")
    uvicorn.run(api, host=serving.host, port=serving.port, log_level="warning")
