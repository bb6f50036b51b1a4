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
import shutil
import signal
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from pz2.config import ModelConfig, RaftConfig, SFTConfig
from pz2.errors import UsageError
from pz2.fileio import atomic_directory, atomic_write_json, sha256_file
from pz2.models.loading import MANIFEST
from pz2.models.unified import served_model
from pz2.training.sft_data import (
    CompletionCollator,
    completion_loss,
    data_files,
    load_examples,
    pack,
    raft_files,
    subsample,
    tokenize,
)
from pz2.workspace import Workspace

logger = logging.getLogger(__name__)

SPECIALISTS = ("qna", "technical")
REMOVED_TYPES = {"daily_chat": "everyday chat is handled by the unified model (제거됨 - 통합모델에서 처리)"}


def output_dir(ws: Workspace, kind: str) -> Path:
    return ws.unified_model / "adapter" if kind == "unified" else ws.specialist(kind)


def check_kind(kind: str) -> str:
    if kind in REMOVED_TYPES:
        raise UsageError(f"`--type {kind}` was removed: {REMOVED_TYPES[kind]}")
    if kind not in ("unified", *SPECIALISTS):
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


def _callbacks(log_dir: Path, main: bool) -> tuple[list[Any], Any]:
    """TensorBoard, a JSONL log (main process only), and a Ctrl-C handler that checkpoints before stopping."""
    from transformers import TrainerCallback
    from transformers.integrations import TensorBoardCallback

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
    return [tensorboard, JsonlLog(), interrupt], interrupt


def _last_checkpoint(directory: Path) -> Path | None:
    done = [p for p in directory.glob("checkpoint-*") if (p / "trainer_state.json").exists()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def train_sft(
    ws: Workspace, kind: str, cfg: SFTConfig, model_cfg: ModelConfig, *, resume: bool = False,
    output: Path | None = None, profile: str | None = None, raft: RaftConfig | None = None,
) -> SFTResult:
    """Fine-tune one LoRA adapter (`kind` = unified | qna | technical); returns where it was saved.
    A specialist trains on RAFT rows (`raft`) when the knowledge base exists."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

    from accelerate import PartialState

    start = time.perf_counter()
    check_kind(kind)
    output = output or output_dir(ws, kind)
    run_dir = ws.checkpoints / kind
    cpu = not torch.cuda.is_available()
    state = PartialState(cpu=cpu)   # one process unless launched by accelerate/torchrun; gloo on a CPU

    # data: validated rows (with retrieved passages, for a specialist) -> chat template -> ids with the prompt masked
    with state.main_process_first():   # the main process converts the base and writes the rows; the rest read them
        base = served_model(model_cfg, None if kind == "unified" else ws.unified_model / "adapter").fingerprint
        tokenizer = AutoTokenizer.from_pretrained(base["path"], trust_remote_code=model_cfg.trust_remote_code)
        grounded = raft_files(ws, kind, raft, model_cfg, tokenizer) if kind != "unified" and raft else None
    train_path, val_path = grounded or data_files(ws, kind)
    train_ex = subsample(load_examples(train_path, kind, model_cfg.system_prompt), cfg.max_train_examples, cfg.seed)
    val_ex = subsample(load_examples(val_path, kind, model_cfg.system_prompt), cfg.max_eval_examples, cfg.seed)
    train_features = tokenize(train_ex, tokenizer, cfg.max_length)
    if cfg.packing:
        train_features = pack(train_features, cfg.max_length)
    val_features = tokenize(val_ex, tokenizer, cfg.max_length)

    # model: the base in float32 on a CPU (bf16 only where the GPU supports it), LoRA on every linear layer
    use_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    model = AutoModelForCausalLM.from_pretrained(
        base["path"], dtype=torch.bfloat16 if use_bf16 else torch.float32, use_safetensors=True,
        trust_remote_code=model_cfg.trust_remote_code,
    )
    lora = LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                      target_modules=list(cfg.lora.target_modules), task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    trainable, total = model.get_nb_trainable_parameters()
    tokens = sum(len(f["input_ids"]) for f in train_features)
    logger.info("%s: %d train rows (%d sequences, %d tokens, %.0f tokens/step), %d validation rows; "
                "LoRA trains %d of %d parameters (%.2f%%)", kind, len(train_ex), len(train_features), tokens,
                tokens / max(1, len(train_features)) * cfg.batch_size * cfg.gradient_accumulation_steps,
                len(val_features), trainable, total, 100 * trainable / total)

    args = TrainingArguments(
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
        bf16=use_bf16,
        use_cpu=cpu,                          # with several processes and no GPU: DDP over gloo
        activation_checkpointing=False,       # on a CPU it costs far more time than the memory it saves
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        remove_unused_columns=False,
        report_to="none",                     # TensorBoard is attached below, with our log folder
        seed=cfg.seed,
        data_seed=cfg.seed,
        train_sampling_strategy="group_by_length" if cfg.group_by_length and not cfg.packing else "random",
        disable_tqdm=False,
        include_num_input_tokens_seen="non_padding",
    )
    log_dir = ws.training_logs / f"{kind}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"
    callbacks, interrupt = _callbacks(log_dir, state.is_main_process)
    trainer = Trainer(model=model, args=args, train_dataset=train_features, eval_dataset=val_features,
                      data_collator=CompletionCollator(tokenizer.pad_token_id, head_at_labels=True),
                      compute_loss_func=completion_loss(model.get_output_embeddings()), callbacks=callbacks)

    checkpoint = _last_checkpoint(run_dir) if resume else None
    if resume and checkpoint is None:
        logger.warning("--resume: no checkpoint in %s, starting from the beginning", run_dir)
    if checkpoint is None and run_dir.exists() and state.is_main_process:
        shutil.rmtree(run_dir)  # a fresh run must not leave an older run's checkpoints to resume from
    state.wait_for_everyone()
    train_out = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    if interrupt.requested:
        return SFTResult(None, run_dir, {"global_step": trainer.state.global_step}, time.perf_counter() - start, True)

    eval_metrics = trainer.evaluate()
    seconds = time.perf_counter() - start
    metrics = {
        "train_loss": train_out.training_loss, "eval_loss": eval_metrics["eval_loss"],
        "global_step": trainer.state.global_step, "train_tokens": tokens, "train_rows": len(train_ex),
        "tokens_seen": trainer.state.num_input_tokens_seen,
        "train_runtime_s": train_out.metrics["train_runtime"],
        "train_tokens_per_s": trainer.state.num_input_tokens_seen / train_out.metrics["train_runtime"],
        "resumed_from": checkpoint.name if checkpoint else None,
    }
    manifest = {
        "kind": kind, "profile": profile, "base_model": base, "raft": grounded is not None,
        "data": {str(p): sha256_file(p) for p in (train_path, val_path)},
        "config": cfg.model_dump(mode="json"), "system_prompt": model_cfg.system_prompt,
        "metrics": metrics, "wall_time_s": round(seconds, 1), "trainable_parameters": trainable,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "log_dir": str(log_dir),
    }
    if trainer.is_world_process_zero():
        with atomic_directory(output) as tmp:
            trainer.accelerator.unwrap_model(model).save_pretrained(tmp)   # adapter_config.json + safetensors
            tokenizer.save_pretrained(tmp)
            atomic_write_json(tmp / MANIFEST, manifest | {"processes": state.num_processes})
        logger.info("%s adapter saved to %s in %.0fs", kind, output, seconds)
    state.wait_for_everyone()   # the others return once the adapter is there
    return SFTResult(output, run_dir, metrics, seconds, main_process=state.is_main_process)
