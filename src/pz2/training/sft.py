"""LoRA supervised fine-tuning of the base: the unified model and the QnA / technical specialists
(with `merge_unified`, the specialists on the unified model merged into the base: two stages, in
which a specialist starts from everything the unified model learned; models/unified.py).

Reads top to bottom: data -> base + LoRA -> transformers Trainer (masked-prompt collator,
optional packing, checkpoints, TensorBoard) -> train (or resume) -> evaluate -> atomic save of
the adapter with its manifest.

Under `accelerate launch --num_processes N` (DDP: NCCL on GPUs, gloo with `--cpu`) every process
runs this function; only the main one prepares the base, writes the RAFT rows, deletes an older
run, writes logs, checkpoints and the adapter, while the others wait for it where they need its files.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from pz2.config import ModelConfig, RaftConfig, SFTConfig, ValidationConfig
from pz2.data.schema import SPECIALIST_CATEGORIES as SPECIALISTS
from pz2.errors import UsageError
from pz2.fileio import atomic_directory, atomic_write_json
from pz2.models.artifacts import load_tokenizer, pretrained
from pz2.models.loading import MANIFEST
from pz2.models.precision import training_dtype
from pz2.models.served import ServedModel
from pz2.models.transformers_names import checkpointing_arguments, sampler_arguments
from pz2.models.unified import served_model
from pz2.training.checkpoints import resume_point, run_record
from pz2.training.progress import StepProgress
from pz2.training.sft_data import (
    KINDS,
    CompletionCollator,
    completion_loss,
    example_of,
    pack,
    raft_rows_for,
    subsample,
    tokenize,
    training_rows,
)
from pz2.workspace import Workspace

BASE_FIX = "check base_model in model_config.yaml, or delete the served model's cache folder to rebuild it"

logger = logging.getLogger(__name__)

REMOVED_TYPES = {"daily_chat": "everyday chat is handled by the unified model (제거됨 - 통합모델에서 처리)"}


def output_dir(ws: Workspace, kind: str) -> Path:
    return ws.unified_model / "adapter" if kind == "unified" else ws.specialist(kind)


def check_kind(kind: str) -> str:
    if kind in REMOVED_TYPES:
        raise UsageError(f"`--type {kind}` was removed: {REMOVED_TYPES[kind]}")
    if kind not in KINDS:
        raise UsageError(f"unknown model type {kind!r}; choose one of {list(SPECIALISTS)}")
    return kind


@dataclass
class SFTResult:
    path: Path | None          # None when interrupted before the end
    checkpoint_dir: Path
    metrics: dict[str, Any]
    seconds: float
    interrupted: bool = False
    main_process: bool = True  # False in the other processes of a multi-process run: they report nothing


def _callbacks(log_dir: Path, main: bool, desc: str) -> tuple[list[Any], Any]:
    """TensorBoard, a JSONL log, progress (a bar on a terminal, a line per log step in a file; the main process
    only), and a Ctrl-C handler that checkpoints before stopping."""
    from transformers import TrainerCallback
    from transformers.integrations import TensorBoardCallback

    class Progress(TrainerCallback):
        """In place of transformers' bar, which also writes each log's raw dict into the output."""

        bar: StepProgress | None = None

        def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001 (transformers' signature)
            self.bar = StepProgress(state.max_steps, desc)
            self.bar.step(state.global_step)   # a resumed run starts where it was

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            self.bar.step()

        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
            shown = {k: v for k, v in (logs or {}).items() if k in ("loss", "eval_loss", "learning_rate", "grad_norm")}
            if self.bar is not None and shown:
                self.bar.report(state.global_step, **shown)

        def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001
            self.bar.close()

    class JsonlLog(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001 (transformers' signature)
            if state.is_world_process_zero and logs:
                with (log_dir / "log.jsonl").open("a", encoding="utf-8") as f:
                    f.write(json.dumps({"step": state.global_step, "epoch": state.epoch, **logs}) + "\n")

    class CheckpointOnInterrupt(TrainerCallback):
        """First Ctrl-C: save a checkpoint at the end of this step and stop. Second: stop at once."""

        requested = False

        def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001
            self._previous = signal.getsignal(signal.SIGINT)

            def handler(signum, frame):  # noqa: ANN001
                logger.warning("interrupted: saving a checkpoint after this step (Ctrl-C again to abort)")
                self.requested = True
                signal.signal(signal.SIGINT, self._previous)

            signal.signal(signal.SIGINT, handler)

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            if self.requested:
                control.should_save = True
                control.should_training_stop = True

        def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001
            signal.signal(signal.SIGINT, self._previous)

    interrupt = CheckpointOnInterrupt()
    if not main:
        return [interrupt], interrupt
    log_dir.mkdir(parents=True, exist_ok=True)
    tensorboard = TensorBoardCallback()
    tensorboard.logging_dir = str(log_dir)  # every writer it opens (train, then evaluate) logs here
    return [tensorboard, JsonlLog(), Progress(), interrupt], interrupt


@dataclass
class _Data:
    """One adapter's training data, tokenized with the tokenizer of the model it trains on."""

    base: ServedModel          # the model it trains on (`served_model`): what the manifest records
    tokenizer: Any
    files: dict[str, dict]     # each data file: its hash, rows and share of the training rows
    grounded: bool             # RAFT rows quoting retrieved passages
    train_rows: int
    train: list[dict]
    validation: list[dict]

    @property
    def tokens(self) -> int:
        return sum(len(f["input_ids"]) for f in self.train)


def _data(ws: Workspace, kind: str, cfg: SFTConfig, model_cfg: ModelConfig, raft: RaftConfig | None,
          validation: ValidationConfig, state: Any, files: Sequence[Path], generated_share: float) -> _Data:
    """Validated rows (with retrieved passages, for a specialist) -> chat template -> ids with every prompt
    token masked."""
    rows = training_rows(ws, kind, files, generated_share, cfg.seed)
    if not rows.validation:
        raise UsageError(f"no validation rows among {', '.join(rows.files)}: put a *_validation.jsonl beside "
                         "your *_train.jsonl, or give more rows (a tenth is held out)")
    with state.main_process_first():   # the main process converts the base and writes the rows; the rest read them
        base = served_model(model_cfg, None if kind == "unified" else ws.unified_model / "adapter")
        tokenizer = load_tokenizer(base.path, BASE_FIX,
                               trust_remote_code=model_cfg.trust_remote_code)
        grounded = raft_rows_for(ws, kind, rows, raft, model_cfg, tokenizer, validation) if kind != "unified" and raft else None
    rows = grounded or rows
    train_ex = subsample([example_of(r, model_cfg.system_prompt) for r in rows.train], cfg.max_train_examples, cfg.seed)
    val_ex = subsample([example_of(r, model_cfg.system_prompt) for r in rows.validation], cfg.max_eval_examples, cfg.seed)
    train = tokenize(train_ex, tokenizer, cfg.max_length)
    if cfg.packing:
        train = pack(train, cfg.max_length)
    return _Data(base, tokenizer, rows.files, grounded is not None, len(train_ex), train,
                 tokenize(val_ex, tokenizer, cfg.max_length))


@dataclass(frozen=True)
class Device:
    """Where and in what precision training runs (`sft.precision`, models/precision.py): float32 on a CPU;
    on a GPU bf16 where it is supported, else fp16 with loss scaling; gradient checkpointing on a GPU
    unless the config says otherwise. bf16 and fp16 are mixed precision: the base's weights in that
    dtype, the LoRA weights in float32, matrix products under autocast."""

    cpu: bool
    dtype: torch.dtype
    checkpointing: bool

    @classmethod
    def detect(cls, cfg: SFTConfig) -> Device:
        cpu = not torch.cuda.is_available()
        checkpointing = (not cpu) if cfg.gradient_checkpointing is None else cfg.gradient_checkpointing
        if cfg.load_in_4bit and cpu:
            raise UsageError("sft.load_in_4bit (QLoRA) needs a CUDA GPU; on a CPU train the float base "
                             "(load_in_4bit: false)")
        return cls(cpu, training_dtype(cfg.precision, cpu), checkpointing)

    @property
    def bf16(self) -> bool:
        return self.dtype is torch.bfloat16

    @property
    def fp16(self) -> bool:
        return self.dtype is torch.float16


def _lora_model(data: _Data, cfg: SFTConfig, model_cfg: ModelConfig, device: Device, local_rank: int) -> Any:
    """The model the data was tokenized for, in the device's precision (4-bit NF4 for QLoRA), with LoRA on
    the configured linear layers."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    extra: dict[str, Any] = {}
    if cfg.load_in_4bit:
        try:
            import bitsandbytes  # noqa: F401  (transformers needs it for the 4-bit weights)
        except ImportError:
            raise UsageError("sft.load_in_4bit needs bitsandbytes: pip install bitsandbytes") from None
        from transformers import BitsAndBytesConfig

        extra = {"quantization_config": BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                           bnb_4bit_compute_dtype=device.dtype,
                                                           bnb_4bit_use_double_quant=True),
                 "device_map": {"": local_rank}}
    model = pretrained(AutoModelForCausalLM.from_pretrained, data.base.path, "model", BASE_FIX,
                       dtype=device.dtype, use_safetensors=True, trust_remote_code=model_cfg.trust_remote_code,
                       **extra)
    if cfg.load_in_4bit:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=device.checkpointing)
    lora = LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                      target_modules=_targets(cfg.lora.target_modules), task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def _targets(modules: tuple[str, ...]) -> str | list[str]:
    """PEFT's own search for `all-linear` (a string, not a module name), else the names given."""
    return "all-linear" if modules == ("all-linear",) else list(modules)


def _arguments(cfg: SFTConfig, run_dir: Path, device: Device) -> Any:
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(run_dir),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        warmup_steps=cfg.warmup_ratio,        # below 1: a share of the total steps
        weight_decay=cfg.weight_decay,
        lr_scheduler_type="linear",
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        eval_strategy="steps",
        eval_steps=cfg.eval_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        bf16=device.bf16,
        fp16=device.fp16,                     # with loss scaling, on a GPU without bf16
        use_cpu=device.cpu,                   # with several processes and no GPU: DDP over gloo
        dataloader_num_workers=0,
        dataloader_pin_memory=not device.cpu,
        remove_unused_columns=False,
        report_to="none",                     # TensorBoard is attached below, with our log folder
        seed=cfg.seed,
        data_seed=cfg.seed,
        disable_tqdm=True,                    # the Progress callback reports instead
        include_num_input_tokens_seen="non_padding",
        **checkpointing_arguments(device.checkpointing),   # off on a CPU: it costs more time than the memory it saves
        **sampler_arguments(cfg.group_by_length and not cfg.packing),
    )


def _final_evaluation(trainer: Any) -> dict[str, float]:
    """The validation metrics of the trained adapter: those of the last step when `eval_steps` already
    evaluated there (the quick profile does; a second pass costs half a minute of a specialist's RAFT rows on a
    CPU and gives the same numbers), else a pass now."""
    last = next((h for h in reversed(trainer.state.log_history) if "eval_loss" in h), None)
    if last is not None and last.get("step") == trainer.state.global_step:
        return last
    return trainer.evaluate()


def train_sft(
    ws: Workspace, kind: str, cfg: SFTConfig, model_cfg: ModelConfig, *, resume: bool = False,
    output: Path | None = None, profile: str | None = None, raft: RaftConfig | None = None,
    validation: ValidationConfig = ValidationConfig(), files: Sequence[Path] = (), generated_share: float = 0.0,
) -> SFTResult:
    """Fine-tune one LoRA adapter (`kind` = unified | qna | technical); returns where it was saved.
    It trains on the generated files, or on the user's `files` with `generated_share` of generated rows
    (`training_rows`). A specialist trains on RAFT rows (`raft`) when the knowledge base exists, checked
    against the limits of `validation` (training_config.yaml's, passed down by the CLI)."""
    from accelerate import PartialState
    from transformers import Trainer
    from transformers.trainer_callback import PrinterCallback

    start = time.perf_counter()
    check_kind(kind)
    output = output or output_dir(ws, kind)
    device = Device.detect(cfg)
    state = PartialState(cpu=device.cpu)   # one process unless launched by accelerate/torchrun; gloo on a CPU

    data = _data(ws, kind, cfg, model_cfg, raft, validation, state, files, generated_share)
    model = _lora_model(data, cfg, model_cfg, device, state.local_process_index)
    trainable, total = model.get_nb_trainable_parameters()
    logger.info("%s: %d train rows (%d sequences, %d tokens, %.0f tokens/step), %d validation rows; "
                "LoRA trains %d of %d parameters (%.2f%%)", kind, data.train_rows, len(data.train), data.tokens,
                data.tokens / max(1, len(data.train)) * cfg.batch_size * cfg.gradient_accumulation_steps,
                len(data.validation), trainable, total, 100 * trainable / total)

    data_hashes = {path: f"{f['sha256']}:{f.get('share', 'validation')}" for path, f in data.files.items()}
    record = run_record(kind, cfg.model_dump(mode="json"), data.base.record(), data_hashes,
                        str(device.dtype).removeprefix("torch."))
    run_dir, checkpoint = resume_point(ws.checkpoints / kind, resume, record, state)
    log_dir = ws.training_logs / f"{kind}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"
    callbacks, interrupt = _callbacks(log_dir, state.is_main_process, kind)
    trainer = Trainer(model=model, args=_arguments(cfg, run_dir, device), train_dataset=data.train,
                      eval_dataset=data.validation,
                      data_collator=CompletionCollator(data.tokenizer.pad_token_id, head_at_labels=True),
                      compute_loss_func=completion_loss(model.get_output_embeddings()), callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)   # it prints every log's raw dict; Progress reports instead
    train_out = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    if interrupt.requested:
        return SFTResult(None, run_dir, {"global_step": trainer.state.global_step}, time.perf_counter() - start, True)

    eval_metrics = _final_evaluation(trainer)
    seconds = time.perf_counter() - start
    runtime = train_out.metrics["train_runtime"]
    metrics = {
        "train_loss": train_out.training_loss, "eval_loss": eval_metrics["eval_loss"],
        "global_step": trainer.state.global_step, "train_tokens": data.tokens, "train_rows": data.train_rows,
        "tokens_seen": trainer.state.num_input_tokens_seen, "train_runtime_s": runtime,
        "train_tokens_per_s": trainer.state.num_input_tokens_seen / runtime,
        "resumed_from": checkpoint.name if checkpoint else None,
    }
    manifest = {
        "kind": kind, "profile": profile, "base_model": data.base.record(), "raft": data.grounded,
        "data": data.files,
        "config": cfg.model_dump(mode="json"), "precision": str(device.dtype).removeprefix("torch."),
        "system_prompt": model_cfg.system_prompt,
        "metrics": metrics, "wall_time_s": round(seconds, 1), "trainable_parameters": trainable,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "log_dir": str(log_dir),
        "processes": state.num_processes,
    }
    if trainer.is_world_process_zero():
        with atomic_directory(output) as tmp:
            trainer.accelerator.unwrap_model(model).save_pretrained(tmp)   # adapter_config.json + safetensors
            data.tokenizer.save_pretrained(tmp)
            atomic_write_json(tmp / MANIFEST, manifest)
        logger.info("%s adapter saved to %s in %.0fs", kind, output, seconds)
    state.wait_for_everyone()   # the others return once the adapter is there
    return SFTResult(output, run_dir, metrics, seconds, main_process=state.is_main_process)
