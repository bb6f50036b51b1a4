"""`pz2 kb build` and `pz2 kb search`: the knowledge base the specialists answer from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from pz2.cli.common import _ws, console, err_console, kb_app


@kb_app.command("build")
def kb_build_cmd(
    ctx: typer.Context,
    paths: Annotated[list[Path] | None, typer.Argument(help="Folders or files of your own documents (Markdown, text, HTML, PDF).")] = None,
) -> None:
    """Index the built-in collections (knowledge.collections) and your documents into finetuning/knowledge/.

    Unchanged documents keep their passages and vectors; only new or edited ones are embedded.
    A file that cannot be read as text is skipped with its reason.

    Example: [bold]pz2 kb build ~/manuals[/]
    """
    from pz2.knowledge.build import build_knowledge
    from pz2.models.sentence import SentenceEncoder
    from pz2.views import embedding_progress

    ws = _ws(ctx)
    cfg = ws.model_config()
    with console.status("embedding passages with MiniLM") as status:
        report = build_knowledge(ws.knowledge, cfg.knowledge, ws.training_config(), SentenceEncoder.for_knowledge(cfg),
                                 list(paths or []), progress=embedding_progress(status))
    for s in report.skipped:
        err_console.print(f"[yellow]skipped[/] {escape(s.path)}: {escape(s.reason)}", highlight=False)
    parts = ", ".join(f"{k} {v}" for k, v in sorted(report.by_collection.items()))
    console.print(f"[green]✓[/] {report.documents} documents → {report.chunks} passages ({parts}) in "
                  f"{report.folder} · {report.embedded} embedded, {report.reused_documents} documents unchanged · "
                  f"{report.seconds:.1f} s")


@kb_app.command("search")
def kb_search_cmd(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("-k", "--top-k", min=1, max=100, help="Hits to show.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the hits as JSON.")] = False,
) -> None:
    """Show the passages the specialists would get for QUERY, with their scores and sources.

    Example: [bold]pz2 kb search "freeze the top row in Excel"[/]
    """
    from pz2.knowledge.retrieval import Retriever

    ws = _ws(ctx)
    cfg = ws.model_config()
    retriever = Retriever.load(ws.knowledge, cfg)
    found = retriever.search(query, k)
    hits = found.hits
    floor = cfg.runtime.retrieval.min_similarity
    if as_json:
        typer.echo(json.dumps([{**h.chunk.to_dict(), "score": h.score, "similarity": h.similarity,
                                "lexical": h.lexical, "source": h.similarity >= floor} for h in hits],
                              ensure_ascii=False, indent=2))
        return
    table = Table(title=f"{len(hits)} hits of {len(retriever.index)} passages · {found.ms:.1f} ms")
    for col in ("#", "fused", "cosine", "bm25", "source", "passage"):
        table.add_column(col)
    for i, h in enumerate(hits, start=1):
        where = f"{h.chunk.path}:{h.chunk.line_start}-{h.chunk.line_end}"
        mark = "" if h.similarity >= floor else f"\n[dim](below the floor {floor}: not a source)[/]"
        preview = " ".join(h.chunk.text.split())[:160]
        table.add_row(str(i), f"{h.score:.4f}", f"{h.similarity:.3f}", f"{h.lexical:.2f}",
                      f"{escape(h.chunk.title)}\n[dim]{escape(where)}[/]{mark}", escape(preview))
    console.print(table)
