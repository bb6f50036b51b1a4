"""`pz2 classify`: label text as qna, technical or general."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from pz2.cli.common import _ws, app, classifier_dir, console
from pz2.errors import UsageError


@app.command()
def classify(
    ctx: typer.Context,
    text: Annotated[str | None, typer.Argument(help="The text to label.")] = None,
    input: Annotated[Path | None, typer.Option("--input", help="JSONL with `text` (or plain lines) to label in batch.")] = None,
    output: Annotated[Path | None, typer.Option(help="Where batch results go (JSONL; default: standard output).")] = None,
    model: Annotated[Path | None, typer.Option(help="Classifier folder (default: the workspace's).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Label text as qna, technical or general, with calibrated probabilities.

    Example: [bold]pz2 classify "How to draw a line in CAD software?"[/]  or  [bold]pz2 classify --input questions.jsonl[/]
    """
    from pz2.runtime.batch import classify_file
    from pz2.runtime.classifier import ConversationClassifier

    if (text is None) == (input is None):
        raise UsageError("give either a TEXT or `--input FILE`")
    if input is not None and not input.is_file():
        raise UsageError(f"{input}: no such file")
    cfg = _ws(ctx).model_config()   # read even for one text: a broken config is reported, not ignored
    clf = ConversationClassifier.load(classifier_dir(ctx, model))
    if input is not None:
        n = classify_file(clf, input, output, cfg.runtime.classify_batch_size)
        if output:
            console.print(f"labelled {n} rows -> {output}")
        return
    p = clf.predict([text])[0]
    if as_json:
        typer.echo(json.dumps(p.to_dict(), ensure_ascii=False))
        return
    probs = "  ".join(f"{k} {v:.3f}" for k, v in p.probs.items())
    console.print(f"[bold]{p.label}[/] ({p.confidence:.3f})   {probs}" + (f"   [dim]{p.note}[/]" if p.note else ""))
