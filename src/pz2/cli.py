"""The `pz2` command line. Commands parse, call one library function, print, and pick the exit code.

Heavy libraries (torch, transformers) are imported inside commands so `pz2 --help` is instant.
"""

from __future__ import annotations

import json
import logging
import os
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table
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
            err_console.print(f"[bold red]error:[/] {e}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(code=2 if isinstance(e, UsageError) else 1) from None


app = typer.Typer(
    cls=_Pz2Group,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    help="pz2: fine-tune and serve a hybrid assistant.\n\nExample: [bold]pz2 demo[/]",
)
data_app = typer.Typer(no_args_is_help=True, help="Generate, import and validate datasets.")
models_app = typer.Typer(no_args_is_help=True, help="Prepare the embedded default models.")
train_app = typer.Typer(no_args_is_help=True, help="Fine-tune the classifier, the unified model and the specialists.")
eval_app = typer.Typer(no_args_is_help=True, help="Evaluate trained models.")
app.add_typer(data_app, name="data")
app.add_typer(models_app, name="models")
app.add_typer(train_app, name="train")
app.add_typer(eval_app, name="eval")


class Lang(str, Enum):
    en = "en"
    ko = "ko"


def _ws(ctx: typer.Context) -> Workspace:
    return ctx.find_root().obj


@app.callback()
def _root(
    ctx: typer.Context,
    workspace: Annotated[Path, typer.Option(envvar="PZ2_WORKSPACE", help="The seed's finetuning/ folder.")] = Path("finetuning"),
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show library log lines.")] = False,
) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=err_console, show_path=False)], force=True)
    ctx.obj = Workspace(workspace)


# ---------------------------------------------------------------- data


@data_app.command("generate")
def data_generate(
    ctx: typer.Context,
    seed: Annotated[int | None, typer.Option(help="Random seed (config: data.seed).")] = None,
    per_category: Annotated[int | None, typer.Option(help="Questions per category (config: data.per_category).")] = None,
    include_real: Annotated[bool | None, typer.Option("--include-real/--no-include-real",
                                                      help="Mix in human-written rows (config: data.include_real).")] = None,
    output: Annotated[Path | None, typer.Option(help="Output folder (default: <workspace>/datasets/processed_english).")] = None,
) -> None:
    """Write the seed's nine dataset files.

    Example: [bold]pz2 data generate --seed 7 --per-category 500[/]
    """
    from pz2.data.generate import generate
    from pz2.views import rows_table

    ws = _ws(ctx)
    cfg = ws.training_config({"data.seed": seed, "data.per_category": per_category, "data.include_real": include_real})
    out = output or ws.datasets
    with console.status("generating datasets ..."):
        report = generate(cfg.data, ws.model_config().system_prompt, out)
    console.print(rows_table(f"{out}  (seed {cfg.data.seed}, {report.seconds:.2f} s)", report.rows))
    if report.real_rows:
        console.print(f"including {report.real_rows} human-written rows")


@data_app.command("import")
def data_import(
    ctx: typer.Context,
    output: Annotated[Path | None, typer.Option(help="Output folder (default: <workspace>/datasets/real_english).")] = None,
    max_per_source: Annotated[int, typer.Option(min=1, help="Rows kept from each corpus at most.")] = 1000,
) -> None:
    """Convert human-written text from packaged corpora (chitchat-dataset, chatterbot-corpus) to the seed's formats.

    Example: [bold]pz2 data import --max-per-source 500[/]
    """
    from pz2.data.real import import_real
    from pz2.views import rows_table

    out = output or _ws(ctx).real_datasets
    with console.status("importing real text ..."):
        report = import_real(out, max_per_source)
    sources = ", ".join(f"{k}: {v}" for k, v in report.by_source.items())
    console.print(rows_table(f"{out}  ({sources})", report.rows))


@data_app.command("validate")
def data_validate(
    ctx: typer.Context,
    paths: Annotated[list[Path] | None, typer.Argument(help="Files or folders (default: the workspace's processed_english).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    lang: Annotated[Lang, typer.Option(help="Message language (ko: 한국어).")] = Lang.en,
    tokens: Annotated[bool, typer.Option("--tokens/--no-tokens", help="Check the base-tokenizer token limit.")] = True,
) -> None:
    """Check dataset files; exit 0 when clean, 1 on errors, 2 on bad usage. Inputs are never modified.

    Example: [bold]pz2 data validate --lang ko[/]
    """
    from pz2.data.validate import validate_directory, validate_files
    from pz2.models.prepare import base_token_counter
    from pz2.views import print_validation

    ws = _ws(ctx)
    targets = paths or [ws.datasets]
    for p in targets:
        if not p.exists():
            raise UsageError(f"{p}: no such file or folder")
    cfg = ws.training_config().validation
    counter = base_token_counter(ws.model_config()) if tokens else None
    if len(targets) == 1 and targets[0].is_dir():
        report = validate_directory(targets[0], cfg, counter, require_defaults=targets[0].resolve() == ws.datasets.resolve())
    else:
        files = [f for p in targets for f in (sorted(p.glob("*.jsonl")) if p.is_dir() else [p])]
        report = validate_files(files, cfg, counter)
    if as_json:
        typer.echo(json.dumps(report.to_dict(lang.value), ensure_ascii=False, indent=2))
    else:
        print_validation(console, report, lang.value)
    raise typer.Exit(code=0 if report.ok else 1)


# ---------------------------------------------------------------- models


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


# ---------------------------------------------------------------- unified model and specialists

ProfileOpt = Annotated[str | None, typer.Option(help="Overlay from `profiles:` in training_config.yaml: quick or full.")]
ResumeOpt = Annotated[bool, typer.Option(help="Continue from the last checkpoint in logs/checkpoints/.")]
StepsOpt = Annotated[int | None, typer.Option(help="Stop after N optimizer steps (config: sft.max_steps).")]
EpochsOpt = Annotated[float | None, typer.Option(help="Epochs (config: sft.epochs).")]
LrOpt = Annotated[float | None, typer.Option(help="Learning rate (config: sft.learning_rate).")]
BatchOpt = Annotated[int | None, typer.Option(help="Examples per step (config: sft.batch_size).")]
PackingOpt = Annotated[bool | None, typer.Option("--packing/--no-packing", help="Pack rows into full blocks (config: sft.packing).")]
OutputOpt = Annotated[Path | None, typer.Option(help="Adapter folder (default: the seed's place in models/).")]


def _train_sft(ctx: typer.Context, kind: str, profile: str | None, resume: bool, overrides: dict[str, Any],
               output: Path | None) -> None:
    from pz2.training.sft import check_kind, train_sft

    check_kind(kind)
    ws = _ws(ctx)
    cfg = ws.training_config().with_profile(profile, overrides)
    result = train_sft(ws, kind, cfg, ws.model_config(), resume=resume, output=output, profile=profile)
    if result.interrupted:
        err_console.print(f"interrupted at step {result.metrics['global_step']}: checkpoint saved in "
                          f"{result.checkpoint_dir}; continue with the same command and --resume")
        raise typer.Exit(code=130)
    m = result.metrics
    console.print(f"{kind} adapter saved to {result.path} in {result.seconds:.0f} s: {m['global_step']} steps, "
                  f"train loss {m['train_loss']:.3f}, validation loss {m['eval_loss']:.3f}, "
                  f"{m['train_tokens_per_s']:.0f} tokens/s")


@train_app.command("unified")
def train_unified_cmd(ctx: typer.Context, profile: ProfileOpt = None, resume: ResumeOpt = False,
                      max_steps: StepsOpt = None, epochs: EpochsOpt = None, learning_rate: LrOpt = None,
                      batch_size: BatchOpt = None, packing: PackingOpt = None, output: OutputOpt = None) -> None:
    """LoRA fine-tune of the unified model on unified_train.jsonl -> models/unified_model/adapter/.

    Example: [bold]pz2 train unified --profile quick[/]   (multi-GPU: [bold]accelerate launch -m pz2 train unified[/])
    """
    _train_sft(ctx, "unified", profile, resume, {"max_steps": max_steps, "epochs": epochs, "learning_rate": learning_rate,
                                                 "batch_size": batch_size, "packing": packing}, output)


@train_app.command("specialist")
def train_specialist_cmd(ctx: typer.Context,
                         type: Annotated[str, typer.Option("--type", help="qna or technical.")],
                         profile: ProfileOpt = None, resume: ResumeOpt = False,
                         max_steps: StepsOpt = None, epochs: EpochsOpt = None, learning_rate: LrOpt = None,
                         batch_size: BatchOpt = None, packing: PackingOpt = None, output: OutputOpt = None) -> None:
    """LoRA fine-tune of a specialist on dialogue_<type>_train.jsonl -> models/<type>_specialist/.

    Example: [bold]pz2 train specialist --type technical --profile quick[/]
    """
    _train_sft(ctx, type, profile, resume, {"max_steps": max_steps, "epochs": epochs, "learning_rate": learning_rate,
                                            "batch_size": batch_size, "packing": packing}, output)


@eval_app.command("generation")
def eval_generation_cmd(
    ctx: typer.Context,
    model: Annotated[Path | None, typer.Option(help="Adapter or model folder; omit for the untuned base.")] = None,
    data: Annotated[Path | None, typer.Option(help="unified_* or dialogue_* JSONL (default: unified_test.jsonl).")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Evaluate the first N rows only.")] = None,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Longest answer generated.")] = 128,
    output: Annotated[Path | None, typer.Option(help="Report folder (default: <model>/eval/<data name>).")] = None,
) -> None:
    """ROUGE-L and chrF of greedy answers against the reference answers; JSON, JSONL and markdown.

    Example: [bold]pz2 eval generation --model finetuning/models/unified_model --limit 50[/]
    """
    from pz2.evaluation.generation_report import evaluate_generation
    from pz2.models.loading import load_for_generation

    ws = _ws(ctx)
    data = data or ws.datasets / "unified_test.jsonl"
    model_cfg = ws.model_config()
    loaded, tokenizer = load_for_generation(model_cfg, model)
    out = output or (model or ws.models / "base") / "eval" / data.stem
    with console.status(f"generating answers for {data.name} ..."):
        result = evaluate_generation(loaded, tokenizer, data, out, model_cfg.system_prompt, limit, max_new_tokens,
                                     label=str(model or "base"))
    m = result.metrics
    console.print(f"{m['model']} on {data.name} ({m['rows']} rows): ROUGE-L {m['rouge_l']:.4f}  chrF {m['chrf']:.4f}  "
                  f"({m['seconds']:.0f} s)\nreport: {result.files['report.md']}")


@app.command("export")
def export_cmd(
    ctx: typer.Context,
    merge: Annotated[bool, typer.Option("--merge", help="Fold the LoRA adapter into the base weights.")] = False,
    model: Annotated[Path | None, typer.Option(help="Adapter folder (default: models/unified_model).")] = None,
    output: Annotated[Path | None, typer.Option(help="Where the merged model goes (default: <model>/merged).")] = None,
) -> None:
    """Write a merged full model (safetensors) for tools without LoRA support.

    Example: [bold]pz2 export --merge --model finetuning/models/qna_specialist --output /tmp/qna-merged[/]
    """
    from pz2.export import export_merged

    if not merge:
        raise UsageError("only `--merge` export exists; the adapters themselves already load in PEFT and vLLM")
    ws = _ws(ctx)
    model = model or ws.models / "unified_model"
    path = export_merged(ws.model_config(), model, output or model / "merged")
    console.print(f"merged model written to {path}")


# ---------------------------------------------------------------- classifier


class Method(str, Enum):
    finetune = "finetune"
    setfit = "setfit"


def _classifier_dir(ctx: typer.Context, model: Path | None) -> Path:
    return model or _ws(ctx).models / "unified_model" / "classifier"


@train_app.command("classifier")
def train_classifier_cmd(
    ctx: typer.Context,
    method: Annotated[Method | None, typer.Option(help="finetune or setfit (config: classifier.method).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Upper bound on epochs (config: classifier.epochs).")] = None,
    include_real: Annotated[bool | None, typer.Option("--include-real/--no-include-real",
                                                      help="Add human-written rows (config: classifier.include_real).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (config: classifier.seed).")] = None,
    output: Annotated[Path | None, typer.Option(help="Output folder (default: <workspace>/models/unified_model/classifier).")] = None,
) -> None:
    """Fine-tune the conversation-type classifier on the embedded MiniLM encoder, calibrate and evaluate it.

    Example: [bold]pz2 train classifier --method setfit --epochs 2[/]
    """
    from pz2.training.classifier import train_classifier

    ws = _ws(ctx)
    cfg = ws.training_config({"classifier.method": method and method.value, "classifier.epochs": epochs,
                              "classifier.include_real": include_real, "classifier.seed": seed})
    result = train_classifier(ws, cfg.classifier, ws.model_config(), output)
    m = result.metrics
    table = Table(title=f"classifier ({m['method']}) saved to {result.path} in {result.seconds:.0f} s")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in m.items():
        if isinstance(value, float):
            table.add_row(key, f"{value:.4f}")
    console.print(table)


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
    model_dir = _classifier_dir(ctx, model)
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
    clf = ConversationClassifier.load(_classifier_dir(ctx, model))
    if input is not None:
        n = classify_file(clf, input, output)
        if output:
            console.print(f"labelled {n} rows -> {output}")
        return
    p = clf.predict([text])[0]
    if as_json:
        typer.echo(json.dumps(p.to_dict(), ensure_ascii=False))
        return
    probs = "  ".join(f"{k} {v:.3f}" for k, v in p.probs.items())
    console.print(f"[bold]{p.label}[/] ({p.confidence:.3f})   {probs}" + (f"   [dim]{p.note}[/]" if p.note else ""))


# ---------------------------------------------------------------- status, demo


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
def demo(ctx: typer.Context) -> None:
    """Run the whole pipeline on the embedded default model: data, base, classifier, unified model, specialists.

    Example: [bold]pz2 demo[/]
    """
    from pz2.demo import run_demo

    ok = run_demo(_ws(ctx), console)
    raise typer.Exit(code=0 if ok else 1)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `pz2` script and of `python -m pz2`."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never download weights or data at run time
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        app(args=argv, prog_name="pz2")
    except SystemExit as e:  # typer ends every run with SystemExit; scripts want the code back
        return e.code if isinstance(e.code, int) else 0 if e.code is None else 1
    return 0
