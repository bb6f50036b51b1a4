"""`pz2 kb build` and `pz2 kb search`: the knowledge base the specialists answer from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from pz2.cli.common import _ws, console, err_console, eval_app, kb_app
from pz2.errors import UsageError


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

    ws = _ws(ctx)
    cfg = ws.model_config()
    with console.status("embedding passages with MiniLM"):
        report = build_knowledge(ws.knowledge, cfg.knowledge, ws.training_config(), SentenceEncoder.load(cfg),
                                 cfg.encoder_model, list(paths or []))
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


@eval_app.command("kb")
def eval_kb_cmd(
    ctx: typer.Context,
    data: Annotated[Path | None, typer.Option(help="JSONL of {question, answers, category, source} "
                                                   "(default: the 48 packaged held-out questions).")] = None,
    models: Annotated[str, typer.Option(help="Comma-separated: specialists, unified, base.")] = "specialists,unified,base",
    no_repeat_ngram_size: Annotated[int | None, typer.Option(help="Decoding override (config: runtime.engine.no_repeat_ngram_size).")] = None,
    repetition_penalty: Annotated[float | None, typer.Option(help="Decoding override (config: runtime.engine.repetition_penalty).")] = None,
    output: Annotated[Path | None, typer.Option(help="Report folder (default: logs/eval/kb-<time>).")] = None,
) -> None:
    """Answers with and without the knowledge base: retrieval recall@k and MRR, factual accuracy, citation
    precision, repeated 4-grams and the time retrieval adds, per model.

    Example: [bold]pz2 eval kb --models specialists[/]
    """
    import time

    from rich.progress import Progress

    from pz2.evaluation.grounded import GROUNDED_QUESTIONS, MODES, evaluate_grounding, load_grounded

    ws = _ws(ctx)
    chosen = tuple(m.strip() for m in models.split(",") if m.strip())
    unknown = set(chosen) - {"specialists", "unified", "base"}
    if unknown or not chosen:
        raise UsageError(f"--models: unknown {sorted(unknown)}; choose from specialists, unified, base")
    cfg = ws.model_config({"runtime.engine.no_repeat_ngram_size": no_repeat_ngram_size,
                           "runtime.engine.repetition_penalty": repetition_penalty})
    path = data or GROUNDED_QUESTIONS
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    rows = load_grounded(path)
    out = output or ws.eval_logs / f"kb-{time.strftime('%Y%m%d-%H%M%S')}"
    per_mode = len(rows) * (("specialists" in chosen) + ("unified" in chosen) + ("base" in chosen))
    with Progress(transient=True, console=err_console) as bar:
        task = bar.add_task(f"answering {len(rows)} questions", total=per_mode * len(MODES))
        metrics = evaluate_grounding(ws, cfg, out, rows, chosen, advance=lambda: bar.advance(task))
    r = metrics["retrieval"]
    console.print(f"retrieval: recall@1 {r['recall@1']:.2f} · recall@3 {r['recall@3']:.2f} · MRR@10 {r['mrr@10']:.2f} · "
                  f"search p50 {r['search_ms']['p50']:.1f} ms")
    table = Table(title="factual accuracy without → with retrieval")
    for col in ("model", "n", "without", "with", "gain", "repeated 4-gram (with)", "citation precision", "added p50"):
        table.add_column(col)
    for model, m in metrics["models"].items():
        w, g = m["without"], m["with"]
        table.add_row(model, str(g["n"]), f"{w['factual_accuracy']:.2f}", f"{g['factual_accuracy']:.2f}",
                      "–" if m["gain"] is None else f"×{m['gain']:.2f}", f"{g['repeated_4gram']:.2f}",
                      "–" if g["citation_precision"] is None else f"{g['citation_precision']:.2f}", f"{m['added_ms_p50']:+.0f} ms")
    console.print(table)
    for name, ok in metrics.get("targets", {}).items():
        console.print(f"{'[green]✓[/]' if ok else '[red]✗[/]'} {name}")
    console.print(f"report: {out / 'report.md'}")
