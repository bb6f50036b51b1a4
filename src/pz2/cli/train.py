"""`pz2 train …`: the unified model, the specialists, the classifier and the router's confidence."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from pz2.cli.common import _ws, console, err_console, train_app


ProfileOpt = Annotated[str | None, typer.Option(help="Overlay from `profiles:` in training_config.yaml: quick or full.")]


ResumeOpt = Annotated[bool, typer.Option(help="Continue from the last checkpoint in logs/checkpoints/.")]


StepsOpt = Annotated[int | None, typer.Option(help="Stop after N optimizer steps (config: sft.max_steps).")]


EpochsOpt = Annotated[float | None, typer.Option(help="Epochs (config: sft.epochs).")]


LrOpt = Annotated[float | None, typer.Option(help="Learning rate (config: sft.learning_rate).")]


BatchOpt = Annotated[int | None, typer.Option(help="Examples per step (config: sft.batch_size).")]


PackingOpt = Annotated[bool | None, typer.Option("--packing/--no-packing", help="Pack rows into full blocks (config: sft.packing).")]


OutputOpt = Annotated[Path | None, typer.Option(help="Adapter folder (default: the seed's place in models/).")]


PrecisionOpt = Annotated[str | None, typer.Option(help="auto, fp32, bf16 or fp16 (config: sft.precision).")]


DataOpt = Annotated[list[Path] | None, typer.Option(
    "--data", help="Train on these JSONL files instead of the generated ones (repeat for more); `pz2 data import` "
                   "writes them from your own conversations.")]


MixOpt = Annotated[list[str] | None, typer.Option(
    help="With --data: generated:SHARE adds generated rows as SHARE of the training rows, e.g. generated:0.3.")]


def _train_sft(ctx: typer.Context, kind: str, profile: str | None, resume: bool, overrides: dict[str, Any],
               output: Path | None, data: list[Path] | None, mix: list[str] | None) -> None:
    from pz2.errors import UsageError
    from pz2.training.sft import check_kind, train_sft
    from pz2.training.sft_data import parse_mix

    check_kind(kind)
    share = parse_mix(mix or [])
    if share and not data:
        raise UsageError("--mix mixes generated rows into your own: name your files with --data")
    for path in data or []:
        if not path.is_file():
            raise UsageError(f"{path}: no such file")
    ws = _ws(ctx)
    training = ws.training_config()
    cfg = training.with_profile(profile, overrides)
    result = train_sft(ws, kind, cfg, ws.model_config(), resume=resume, output=output, profile=profile,
                       raft=training.raft, validation=training.validation, files=data or (), generated_share=share)
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
                      output: OutputOpt = None, data: DataOpt = None, mix: MixOpt = None) -> None:
    """LoRA fine-tune of the unified model on unified_train.jsonl (or your --data) -> models/unified_model/adapter/.

    Example: [bold]pz2 train unified --profile quick[/]   [bold]pz2 train unified --data mine/unified_train.jsonl --mix generated:0.3[/]
    (multi-GPU: [bold]accelerate launch -m pz2 train unified[/])
    """
    _train_sft(ctx, "unified", profile, resume, {"max_steps": max_steps, "epochs": epochs, "learning_rate": learning_rate,
                                                 "batch_size": batch_size, "packing": packing, "precision": precision},
               output, data, mix)


@train_app.command("specialist")
def train_specialist_cmd(ctx: typer.Context,
                         type: Annotated[str, typer.Option("--type", help="qna or technical.")],
                         profile: ProfileOpt = None, resume: ResumeOpt = False,
                         max_steps: StepsOpt = None, epochs: EpochsOpt = None, learning_rate: LrOpt = None,
                         batch_size: BatchOpt = None, packing: PackingOpt = None, precision: PrecisionOpt = None,
                         output: OutputOpt = None, data: DataOpt = None, mix: MixOpt = None) -> None:
    """LoRA fine-tune of a specialist on dialogue_<type>_train.jsonl (or your --data) -> models/<type>_specialist/.

    Example: [bold]pz2 train specialist --type technical --profile quick[/]
    [bold]pz2 train specialist --type technical --data mine/dialogue_technical_train.jsonl[/]
    """
    _train_sft(ctx, type, profile, resume, {"max_steps": max_steps, "epochs": epochs, "learning_rate": learning_rate,
                                            "batch_size": batch_size, "packing": packing, "precision": precision},
               output, data, mix)


class Method(str, Enum):
    finetune = "finetune"
    setfit = "setfit"


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


@train_app.command("confidence")
def train_confidence_cmd(
    ctx: typer.Context,
    limit: Annotated[int | None, typer.Option(help="Validation questions to answer, all when 0 "
                                                   "(config: confidence.limit).")] = None,
    human_limit: Annotated[int | None, typer.Option(help="Human-written questions answered besides "
                                                        "(config: confidence.human_limit).")] = None,
    good_semscore: Annotated[float | None, typer.Option(help="An answer without a short reference is good when its "
                                                             "SemScore reaches this (config: confidence.good_semscore).")] = None,
    feedback: Annotated[bool | None, typer.Option("--feedback/--no-feedback", help="Fit on the answers people rated "
                                                   "too, from logs/assistant/feedback.jsonl (config: confidence.feedback).")] = None,
    engine: Annotated[str | None, typer.Option(help="llamacpp or transformers (config: runtime.engine.backend).")] = None,
) -> None:
    """Fit the router's confidence: P(the unified answer is good), from generation signals and the answer's check
    against the knowledge base, on generated and human-written questions (and, with --feedback, on the answers
    people rated in the chat).

    Example: [bold]pz2 train confidence --limit 400[/]   [bold]pz2 train confidence --feedback[/]
    """
    from pz2.runtime.assistant import unified_parts
    from pz2.runtime.confidence_fit import fit_confidence
    from pz2.views import confidence_lines

    ws = _ws(ctx)
    training = ws.training_config({"confidence.good_semscore": good_semscore, "confidence.feedback": feedback})
    cfg = training.confidence
    if limit is not None:
        cfg = cfg.model_copy(update={"limit": limit or None})
    if human_limit is not None:
        cfg = cfg.model_copy(update={"human_limit": human_limit})
    model_cfg = ws.model_config({"runtime.engine.backend": engine})
    model, path = fit_confidence(ws, *unified_parts(ws, model_cfg), model_cfg, cfg, training.evaluation.short_answer_words)
    console.print(f"confidence model saved to {path}:")
    console.print(confidence_lines(model.metrics))
