"""`pz2 eval …`: generation, the architectures compared, the classifier, the knowledge base."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pz2.cli.common import _ws, classifier_dir, console, err_console, eval_app
from pz2.errors import UsageError


DeviceOpt = Annotated[str | None, typer.Option(help="auto, cpu, cuda or cuda:N (config: runtime.engine.device).")]


DtypeOpt = Annotated[str | None, typer.Option(help="auto, float32, bfloat16 or float16 (config: runtime.engine.dtype).")]


@eval_app.command("generation")
def eval_generation_cmd(
    ctx: typer.Context,
    model: Annotated[Path | None, typer.Option(help="Adapter or model folder; omit for the untuned base.")] = None,
    data: Annotated[Path | None, typer.Option(help="unified_* or dialogue_* JSONL (default: unified_test.jsonl).")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Evaluate the first N rows only.")] = None,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Longest answer generated.")] = 128,
    output: Annotated[Path | None, typer.Option(help="Report folder (default: <model>/eval/<data name>).")] = None,
    engine: Annotated[str | None, typer.Option(help="llamacpp or transformers (config: runtime.engine.backend; "
                                                    "transformers when --device or --dtype is given, or the model "
                                                    "is a full model folder).")] = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
) -> None:
    """ROUGE-L and chrF of greedy answers against the reference answers; JSON, JSONL and markdown.

    The answers come from the engine pz2 serves, decoding as it does (no-repeat rule included).

    Example: [bold]pz2 eval generation --model finetuning/models/unified_model --limit 50[/]   (on a GPU: [bold]--device cuda[/])
    """
    from pz2.evaluation.generation_report import evaluate_generation
    from pz2.models.loading import find_trained
    from pz2.runtime.engine import engine_answering_as

    ws = _ws(ctx)
    data = data or ws.datasets / "unified_test.jsonl"
    full = model is not None and model.exists() and find_trained(model).kind == "full"
    if engine is None and (device or dtype or full):
        engine = "transformers"   # the only engine that places a model on a device, or reads a model folder
    model_cfg = ws.model_config({"runtime.engine.backend": engine, "runtime.engine.device": device,
                                 "runtime.engine.dtype": dtype})
    answering, adapter = engine_answering_as(model_cfg, model, ws.unified_model / "adapter")
    out = output or (model or ws.models / "base") / "eval" / data.stem
    with console.status(f"generating answers for {data.name} ({answering.name}) ..."):
        result = evaluate_generation(answering, adapter, data, out, model_cfg.system_prompt, limit, max_new_tokens,
                                     label=str(model or "base"))
    m = result.metrics
    console.print(f"{m['model']} on {data.name} ({m['rows']} rows, {m['engine']}): ROUGE-L {m['rouge_l']:.4f}  "
                  f"chrF {m['chrf']:.4f}  ({m['seconds']:.0f} s)\nreport: {result.files['report.md']}")


class QualityMetric(str, Enum):
    semscore = "semscore"
    rouge_l = "rouge_l"
    chrf = "chrf"
    bleu = "bleu"


@eval_app.command("compare")
def eval_compare_cmd(
    ctx: typer.Context,
    data: Annotated[list[Path] | None, typer.Option(help="unified_* or dialogue_* JSONL; repeat for several "
                                                        "(default: unified_test.jsonl + the human-written test split).")] = None,
    limit: Annotated[int | None, typer.Option(min=0, help="Rows per file and category; 0 = all (config: evaluation.limit).")] = None,
    models: Annotated[Path | None, typer.Option(help="Folder with unified_model/, qna_specialist/, technical_specialist/ "
                                                     "(default: the workspace's models/).")] = None,
    quality_metric: Annotated[QualityMetric | None, typer.Option(help="Quality the routing curve uses "
                                                                      "(config: evaluation.quality_metric).")] = None,
    engine: Annotated[str | None, typer.Option(help="llamacpp or transformers (config: runtime.engine.backend).")] = None,
    seed: Annotated[int | None, typer.Option(help="Which rows --limit draws (config: evaluation.seed).")] = None,
    output: Annotated[Path | None, typer.Option(help="Report folder (default: logs/eval/compare-<time>).")] = None,
) -> None:
    """Unified vs separated vs hybrid on the same held-out rows: quality, latency, memory, the routing curve.

    Example: [bold]pz2 eval compare --limit 10[/]   (bring your own rows: [bold]--data my_test.jsonl[/])
    """
    import time

    from pz2.evaluation.compare import compare
    from pz2.views import print_comparison

    ws = _ws(ctx)
    if models is not None:
        if not models.is_dir():
            raise UsageError(f"{models}: no such models folder")
        ws = type(ws)(ws.root, models)
    for path in data or []:
        if not path.is_file():
            raise UsageError(f"{path}: no such file")
    ecfg = ws.training_config({"evaluation.limit": limit or None, "evaluation.quality_metric": quality_metric and quality_metric.value,
                               "evaluation.seed": seed}).evaluation
    if limit == 0:
        ecfg = ecfg.model_copy(update={"limit": None})
    out = output or ws.eval_logs / time.strftime("compare-%Y%m%d-%H%M%S")
    result = compare(ws, ws.model_config({"runtime.engine.backend": engine}), ecfg, out, data or None)
    print_comparison(console, result.metrics)
    console.print(f"report: {result.files['report.md']}")


@eval_app.command("classifier")
def eval_classifier_cmd(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option(help="JSONL file with `text` and `label` (0=qna, 1=technical, 2=general).")],
    model: Annotated[Path | None, typer.Option(help="Classifier folder (default: the workspace's).")] = None,
    output: Annotated[Path | None, typer.Option(help="Report folder (default: <model>/eval/<data name>).")] = None,
) -> None:
    """Accuracy, macro-F1, per-class precision/recall/F1, confusion matrix and ECE, as JSON, markdown and PNG.

    Example: [bold]pz2 eval classifier --data finetuning/datasets/real_english/classification_test.jsonl[/]
    """
    from pz2.evaluation.classifier_report import evaluate_classifier
    from pz2.runtime.classifier import ConversationClassifier

    if not data.is_file():
        raise UsageError(f"{data}: no such file")
    model_dir = classifier_dir(ctx, model)
    result = evaluate_classifier(ConversationClassifier.load(model_dir), data,
                                 output or model_dir / "eval" / data.stem)
    m = result.metrics
    table = Table(title=f"{data.name}: {m.rows} rows")
    for col in ("class", "precision", "recall", "F1", "support"):
        table.add_column(col, justify="right" if col != "class" else "left")
    for name, c in m.per_class.items():
        table.add_row(name, f"{c.precision:.4f}", f"{c.recall:.4f}", f"{c.f1:.4f}", str(c.support))
    console.print(table)
    console.print(f"accuracy {m.accuracy:.4f}  macro-F1 {m.macro_f1:.4f}  ECE {m.ece:.4f}  NLL {m.nll:.4f}")
    console.print(f"report: {result.files['report.md']}")


@eval_app.command("kb")
def eval_kb_cmd(
    ctx: typer.Context,
    data: Annotated[Path | None, typer.Option(help="JSONL of {question, answers, category, source} "
                                                   "(default: the 48 packaged held-out questions; "
                                                   "src/pz2/evaluation/general_questions.jsonl holds 100 "
                                                   "general-knowledge ones, source '' = no known document).")] = None,
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
    for col in ("model", "n", "without", "with", "gain", "repeated 4-gram (with)", "faithful copy", "citation precision",
                "odd words", "added p50"):
        table.add_column(col)
    for model, m in metrics["models"].items():
        w, g = m["without"], m["with"]
        table.add_row(model, str(g["n"]), f"{w['factual_accuracy']:.2f}", f"{g['factual_accuracy']:.2f}",
                      "–" if m["gain"] is None else f"×{m['gain']:.2f}", f"{g['repeated_4gram']:.2f}",
                      "–" if g["faithful_copy"] is None else f"{g['faithful_copy']:.2f}",
                      "–" if g["citation_precision"] is None else f"{g['citation_precision']:.2f}",
                      str(len(g["odd_words"])), f"{m['added_ms_p50']:+.0f} ms")
    console.print(table)
    for name, ok in metrics.get("targets", {}).items():
        console.print(f"{'[green]✓[/]' if ok else '[red]✗[/]'} {name}")
    console.print(f"report: {out / 'report.md'}")
