"""`pz2 train …`, `pz2 eval …`, `pz2 export`, `pz2 classify`: models in, models and reports out."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from pz2.cli.common import _ws, app, console, err_console, eval_app, train_app
from pz2.errors import UsageError

# ---------------------------------------------------------------- unified model and specialists

ProfileOpt = Annotated[str | None, typer.Option(help="Overlay from `profiles:` in training_config.yaml: quick or full.")]
ResumeOpt = Annotated[bool, typer.Option(help="Continue from the last checkpoint in logs/checkpoints/.")]
StepsOpt = Annotated[int | None, typer.Option(help="Stop after N optimizer steps (config: sft.max_steps).")]
EpochsOpt = Annotated[float | None, typer.Option(help="Epochs (config: sft.epochs).")]
LrOpt = Annotated[float | None, typer.Option(help="Learning rate (config: sft.learning_rate).")]
BatchOpt = Annotated[int | None, typer.Option(help="Examples per step (config: sft.batch_size).")]
PackingOpt = Annotated[bool | None, typer.Option("--packing/--no-packing", help="Pack rows into full blocks (config: sft.packing).")]
OutputOpt = Annotated[Path | None, typer.Option(help="Adapter folder (default: the seed's place in models/).")]
PrecisionOpt = Annotated[str | None, typer.Option(help="auto, fp32, bf16 or fp16 (config: sft.precision).")]
DeviceOpt = Annotated[str | None, typer.Option(help="auto, cpu, cuda or cuda:N (config: runtime.engine.device).")]
DtypeOpt = Annotated[str | None, typer.Option(help="auto, float32, bfloat16 or float16 (config: runtime.engine.dtype).")]


def _train_sft(ctx: typer.Context, kind: str, profile: str | None, resume: bool, overrides: dict[str, Any],
               output: Path | None) -> None:
    from pz2.training.sft import check_kind, train_sft

    check_kind(kind)
    ws = _ws(ctx)
    training = ws.training_config()
    cfg = training.with_profile(profile, overrides)
    result = train_sft(ws, kind, cfg, ws.model_config(), resume=resume, output=output, profile=profile,
                       raft=training.raft)
    if result.interrupted:
        err_console.print(f"interrupted at step {result.metrics['global_step']}: checkpoint saved in "
                          f"{result.checkpoint_dir}; continue with the same command and --resume")
        raise typer.Exit(code=130)
    if not result.main_process:
        return
    m = result.metrics
    console.print(f"{kind} adapter saved to {result.path} in {result.seconds:.0f} s: {m['global_step']} steps, "
                  f"train loss {m['train_loss']:.3f}, validation loss {m['eval_loss']:.3f}, "
                  f"{m['train_tokens_per_s']:.0f} tokens/s")


@train_app.command("unified")
def train_unified_cmd(ctx: typer.Context, profile: ProfileOpt = None, resume: ResumeOpt = False,
                      max_steps: StepsOpt = None, epochs: EpochsOpt = None, learning_rate: LrOpt = None,
                      batch_size: BatchOpt = None, packing: PackingOpt = None, precision: PrecisionOpt = None,
                      output: OutputOpt = None) -> None:
    """LoRA fine-tune of the unified model on unified_train.jsonl -> models/unified_model/adapter/.

    Example: [bold]pz2 train unified --profile quick[/]   (multi-GPU: [bold]accelerate launch -m pz2 train unified[/])
    """
    _train_sft(ctx, "unified", profile, resume, {"max_steps": max_steps, "epochs": epochs, "learning_rate": learning_rate,
                                                 "batch_size": batch_size, "packing": packing, "precision": precision},
               output)


@train_app.command("specialist")
def train_specialist_cmd(ctx: typer.Context,
                         type: Annotated[str, typer.Option("--type", help="qna or technical.")],
                         profile: ProfileOpt = None, resume: ResumeOpt = False,
                         max_steps: StepsOpt = None, epochs: EpochsOpt = None, learning_rate: LrOpt = None,
                         batch_size: BatchOpt = None, packing: PackingOpt = None, precision: PrecisionOpt = None,
                         output: OutputOpt = None) -> None:
    """LoRA fine-tune of a specialist on dialogue_<type>_train.jsonl -> models/<type>_specialist/.

    Example: [bold]pz2 train specialist --type technical --profile quick[/]
    """
    _train_sft(ctx, type, profile, resume, {"max_steps": max_steps, "epochs": epochs, "learning_rate": learning_rate,
                                            "batch_size": batch_size, "packing": packing, "precision": precision},
               output)


@eval_app.command("generation")
def eval_generation_cmd(
    ctx: typer.Context,
    model: Annotated[Path | None, typer.Option(help="Adapter or model folder; omit for the untuned base.")] = None,
    data: Annotated[Path | None, typer.Option(help="unified_* or dialogue_* JSONL (default: unified_test.jsonl).")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Evaluate the first N rows only.")] = None,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Longest answer generated.")] = 128,
    output: Annotated[Path | None, typer.Option(help="Report folder (default: <model>/eval/<data name>).")] = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
) -> None:
    """ROUGE-L and chrF of greedy answers against the reference answers; JSON, JSONL and markdown.

    Example: [bold]pz2 eval generation --model finetuning/models/unified_model --limit 50[/]   (on a GPU: [bold]--device cuda[/])
    """
    from pz2.evaluation.generation_report import evaluate_generation
    from pz2.models.loading import load_for_generation

    ws = _ws(ctx)
    data = data or ws.datasets / "unified_test.jsonl"
    model_cfg = ws.model_config({"runtime.engine.device": device, "runtime.engine.dtype": dtype})
    loaded, tokenizer = load_for_generation(model_cfg, model)
    out = output or (model or ws.models / "base") / "eval" / data.stem
    with console.status(f"generating answers for {data.name} ..."):
        result = evaluate_generation(loaded, tokenizer, data, out, model_cfg.system_prompt, limit, max_new_tokens,
                                     label=str(model or "base"))
    m = result.metrics
    console.print(f"{m['model']} on {data.name} ({m['rows']} rows): ROUGE-L {m['rouge_l']:.4f}  chrF {m['chrf']:.4f}  "
                  f"({m['seconds']:.0f} s)\nreport: {result.files['report.md']}")


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
    result = compare(ws, ecfg, out, data or None, overrides={"runtime.engine.backend": engine})
    print_comparison(console, result.metrics)
    console.print(f"report: {result.files['report.md']}")


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


# ---------------------------------------------------------------- classifier


class Method(str, Enum):
    finetune = "finetune"
    setfit = "setfit"


def _classifier_dir(ctx: typer.Context, model: Path | None) -> Path:
    return model or _ws(ctx).classifier


@train_app.command("classifier")
def train_classifier_cmd(
    ctx: typer.Context,
    method: Annotated[Method | None, typer.Option(help="finetune or setfit (config: classifier.method).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Upper bound on epochs (config: classifier.epochs).")] = None,
    learning_rate: Annotated[float | None, typer.Option(help="Peak learning rate (config: classifier.learning_rate).")] = None,
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
                              "classifier.learning_rate": learning_rate,
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
        n = classify_file(clf, input, output, _ws(ctx).model_config().runtime.classify_batch_size)
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




@train_app.command("confidence")
def train_confidence_cmd(
    ctx: typer.Context,
    limit: Annotated[int | None, typer.Option(help="Validation questions to answer, all when 0 "
                                                   "(config: confidence.limit).")] = None,
    good_rouge_l: Annotated[float | None, typer.Option(help="An answer is good when its ROUGE-L reaches this "
                                                            "(config: confidence.good_rouge_l).")] = None,
    engine: Annotated[str | None, typer.Option(help="llamacpp or transformers (config: runtime.engine.backend).")] = None,
) -> None:
    """Fit the router's confidence: P(the unified answer is good), from generation signals.

    Example: [bold]pz2 train confidence --limit 400[/]
    """
    from pz2.runtime.assistant import unified_parts
    from pz2.runtime.confidence_fit import fit_confidence

    ws = _ws(ctx)
    cfg = ws.training_config({"confidence.good_rouge_l": good_rouge_l}).confidence
    if limit is not None:
        cfg = cfg.model_copy(update={"limit": limit or None})
    model_cfg = ws.model_config({"runtime.engine.backend": engine})
    model, path = fit_confidence(ws, *unified_parts(ws, model_cfg), model_cfg, cfg)
    m = model.metrics
    lo, hi = m["ece_ci95"]
    console.print(f"confidence model saved to {path}: {m['rows']} answers, {m['good_rate']:.0%} good, "
                  f"out-of-fold ECE {m['ece']:.3f} (95% CI {lo:.3f}-{hi:.3f}), AUC {m['auc']:.3f}, Brier {m['brier']:.3f}")
