"""Fine-tune the conversation-type classifier, calibrate it, evaluate it, save it atomically.

Reads top to bottom: data -> model -> training loop (method `finetune` or `setfit`) ->
temperature scaling on validation -> metrics on the held-out splits -> save.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pz2.config import ClassifierConfig, ModelConfig
from pz2.data.loading import load_rows
from pz2.data.real import CHALLENGE_FILE, import_real
from pz2.data.schema import LABELS, FileKind
from pz2.evaluation.metrics import classification_metrics, softmax
from pz2.evaluation.plots import reliability_diagram
from pz2.fileio import atomic_directory, atomic_write_json, sha256_file
from pz2.models.classifier_model import (
    HEAD_FILE,
    META_FILE,
    Encoded,
    SetFitClassifier,
    batched_logits,
    model_logits,
)
from pz2.models.prepare import resolve_encoder
from pz2.training.calibration import fit_temperature
from pz2.training.progress import StepProgress
from pz2.workspace import Workspace

logger = logging.getLogger(__name__)


@dataclass
class Split:
    texts: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)

    def add(self, rows: list[dict]) -> None:
        self.texts += [r["text"] for r in rows]
        self.labels += [r["label"] for r in rows]

    @property
    def y(self) -> np.ndarray:
        return np.array(self.labels, dtype=np.int64)


@dataclass
class ClassifierData:
    train: Split
    validation: Split
    test: Split                 # generated, unseen topics
    real_test: Split | None     # human-written (packaged corpora), never trained on
    challenge: Split            # hand-written by the pz2 authors: slang, typos, rambling, never trained on
    files: dict[str, str]       # path -> sha256 of every file read


def load_data(ws: Workspace, cfg: ClassifierConfig) -> ClassifierData:
    """The generated splits, plus the human-written ones when `include_real` (imported on demand)."""
    files: dict[str, str] = {}

    def read(path: Path) -> list[dict]:
        rows = load_rows(path, FileKind.CLASSIFICATION)
        files[str(path)] = sha256_file(path)
        return rows

    splits = {s: Split() for s in ("train", "validation", "test")}
    for name, split in splits.items():
        split.add(read(ws.datasets / f"classification_{name}.jsonl"))
    challenge = Split()
    challenge.add(read(CHALLENGE_FILE))
    real_test = None
    if cfg.include_real:
        real_dir = ws.real_datasets
        if not (real_dir / "classification_test.jsonl").exists():
            import_real(real_dir)
        splits["train"].add(read(real_dir / "classification_train.jsonl"))
        splits["validation"].add(read(real_dir / "classification_validation.jsonl"))
        real_test = Split()
        real_test.add(read(real_dir / "classification_test.jsonl"))
    return ClassifierData(splits["train"], splits["validation"], splits["test"], real_test, challenge, files)


def _batches(lengths: list[int], size: int, gen: torch.Generator) -> list[list[int]]:
    """Shuffled batches of items of similar length: less padding, fewer wasted FLOPs on a CPU."""
    order = torch.randperm(len(lengths), generator=gen).tolist()
    chunk = size * 50
    batches = []
    for i in range(0, len(order), chunk):
        part = sorted(order[i : i + chunk], key=lengths.__getitem__)
        batches += [part[k : k + size] for k in range(0, len(part), size)]
    perm = torch.randperm(len(batches), generator=gen).tolist()
    return [batches[p] for p in perm]


def _logits(model: nn.Module, tokenizer: Any, texts: list[str], max_length: int) -> np.ndarray:
    """Logits for evaluation in the middle of training: eval mode for the pass, then back to train."""
    model.eval()
    logits, _ = batched_logits(model, tokenizer, texts, max_length, batch_size=128)
    model.train()
    return logits


@dataclass
class _Trained:
    model: nn.Module
    history: list[dict]
    steps: int


def _train_loop(
    model: nn.Module, lengths: list[int], cfg: ClassifierConfig,
    loss_fn: Callable[[nn.Module, list[int]], torch.Tensor],
    evaluate: Callable[[nn.Module], dict] | None, lr: float, epochs: int, desc: str, log: Callable[[dict], None],
) -> _Trained:
    """AdamW with linear warm-up and decay over items 0..len(lengths)-1; `loss_fn` turns a batch of
    item indices into a loss. Keeps the best validation state and stops after `patience` passes."""
    from transformers import get_linear_schedule_with_warmup

    gen = torch.Generator().manual_seed(cfg.seed)
    steps_per_epoch = -(-len(lengths) // cfg.batch_size)
    total = steps_per_epoch * epochs
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=lr)
    sched = get_linear_schedule_with_warmup(opt, int(cfg.warmup_ratio * total), total)
    history: list[dict] = []
    best, best_state, bad, step = None, None, 0, 0
    model.train()
    bar = StepProgress(total, desc)
    stop = False
    for epoch in range(epochs):
        for idx in _batches(lengths, cfg.batch_size, gen):
            loss = loss_fn(model, idx)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            bar.step(loss=loss.item())
            if evaluate is not None and (step % cfg.eval_every == 0 or step == total):
                record = {"step": step, "epoch": epoch, "loss": float(loss.item()), **evaluate(model)}
                history.append(record)
                log(record)
                score = (record["val_macro_f1"], -record["val_nll"])
                if best is None or score > best:
                    best, best_state, bad = score, copy.deepcopy(model.state_dict()), 0
                else:
                    bad += 1
                    stop = bad >= cfg.patience
                bar.report(step, loss=loss.item(), val_macro_f1=record["val_macro_f1"])
            if stop:
                break
        if stop:
            break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return _Trained(model, history, step)


def _validation_scorer(tokenizer: Any, val: Split, cfg: ClassifierConfig) -> Callable[[nn.Module], dict]:
    def evaluate(model: nn.Module) -> dict:
        probs = softmax(_logits(model, tokenizer, val.texts, cfg.max_length))
        m = classification_metrics(probs, val.y, LABELS)
        return {"val_macro_f1": m.macro_f1, "val_accuracy": m.accuracy, "val_nll": m.nll}
    return evaluate


def _finetune(encoder: str, tokenizer: Any, data: ClassifierData, cfg: ClassifierConfig,
              log: Callable[[dict], None]) -> _Trained:
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the new head's "newly initialized" report is expected, not a problem
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            encoder, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
            label2id={n: i for i, n in enumerate(LABELS)}, use_safetensors=True,
        )
    finally:
        hf_logging.set_verbosity(verbosity)

    texts, labels = data.train.texts, data.train.labels

    def loss_fn(m: nn.Module, idx: list[int]) -> torch.Tensor:
        batch = Encoded(tokenizer, [texts[i] for i in idx], cfg.max_length).batch
        return nn.functional.cross_entropy(model_logits(m, batch), torch.tensor([labels[i] for i in idx]))

    return _train_loop(model, [len(t) for t in texts], cfg, loss_fn,
                       _validation_scorer(tokenizer, data.validation, cfg), cfg.train_learning_rate, cfg.train_epochs,
                       "finetune", log)


def _pairs(labels: list[int], n: int, rng: np.random.Generator) -> tuple[list[int], list[int], list[float]]:
    """SetFit's contrastive pairs: half with the same label (target 1), half with different labels (0)."""
    by_label = {k: np.flatnonzero(np.array(labels) == k) for k in set(labels)}
    a, b, target = [], [], []
    for i in range(n):
        anchor = int(rng.integers(len(labels)))
        same = i % 2 == 0
        pool = by_label[labels[anchor]] if same else np.flatnonzero(np.array(labels) != labels[anchor])
        a.append(anchor)
        b.append(int(rng.choice(pool)))
        target.append(1.0 if same else 0.0)
    return a, b, target


def _setfit(encoder: str, tokenizer: Any, data: ClassifierData, cfg: ClassifierConfig,
            log: Callable[[dict], None]) -> _Trained:
    from transformers import AutoModel

    model = SetFitClassifier(AutoModel.from_pretrained(encoder, use_safetensors=True), len(LABELS))
    rng = np.random.default_rng(cfg.seed)
    a, b, target = _pairs(data.train.labels, cfg.setfit_pairs, rng)
    texts = data.train.texts
    # 1. contrastive: the cosine of a pair's embeddings should be its target (CosineSimilarityLoss)
    def contrastive(m: nn.Module, idx: list[int]) -> torch.Tensor:
        left = Encoded(tokenizer, [texts[a[k]] for k in idx], cfg.max_length).batch
        right = Encoded(tokenizer, [texts[b[k]] for k in idx], cfg.max_length).batch
        cos = (m.embed(**left) * m.embed(**right)).sum(-1)
        return nn.functional.mse_loss(cos, torch.tensor([target[k] for k in idx]))

    pair_lengths = [len(texts[i]) + len(texts[j]) for i, j in zip(a, b, strict=True)]
    stage1 = _train_loop(model, pair_lengths, cfg, contrastive, None, cfg.train_learning_rate, cfg.train_epochs,
                         "setfit pairs", log)
    # 2. head: multinomial logistic regression on frozen embeddings, L2-regularised
    with torch.inference_mode():
        x = torch.cat([model.embed(**Encoded(tokenizer, texts[i : i + 128], cfg.max_length).batch)
                       for i in range(0, len(texts), 128)])
    x, y = x.clone(), torch.tensor(data.train.labels)
    head = model.head
    opt = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=300, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(head(x), y) + 1e-4 * head.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    history = stage1.history + [{"step": stage1.steps, **_validation_scorer(tokenizer, data.validation, cfg)(model)}]
    log(history[-1])
    return _Trained(model.eval(), history, stage1.steps)


METHODS: dict[str, Callable[[str, Any, ClassifierData, ClassifierConfig, Callable[[dict], None]], _Trained]] = {
    "finetune": _finetune,
    "setfit": _setfit,
}


@dataclass
class ClassifierResult:
    path: Path
    metrics: dict[str, Any]
    seconds: float


def train_classifier(ws: Workspace, cfg: ClassifierConfig, model_cfg: ModelConfig, output: Path | None = None) -> ClassifierResult:
    """Train, calibrate, evaluate and save the classifier; returns its directory and metrics."""
    from transformers import AutoTokenizer

    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    output = output or ws.classifier
    data = load_data(ws, cfg)
    encoder = resolve_encoder(model_cfg)
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    logger.info("classifier: %s on %d train / %d validation texts, max_length %d, encoder %s",
                cfg.method, len(data.train.texts), len(data.validation.texts), cfg.max_length, encoder)

    log = ws.training_logs / f"classifier-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)

    def append(record: dict) -> None:   # as it goes: a crash keeps the validation passes done so far
        with log.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    trained = METHODS[cfg.method](encoder, tokenizer, data, cfg, append)
    n_params = sum(p.numel() for p in trained.model.parameters())

    val_logits = _logits(trained.model, tokenizer, data.validation.texts, cfg.max_length)
    temperature = fit_temperature(val_logits, data.validation.y)
    before = classification_metrics(softmax(val_logits), data.validation.y, LABELS)
    after = classification_metrics(softmax(val_logits, temperature), data.validation.y, LABELS)
    held_out = {"test": data.test, "challenge": data.challenge}
    if data.real_test is not None:
        held_out["real_test"] = data.real_test
    results = {name: classification_metrics(softmax(_logits(trained.model, tokenizer, s.texts, cfg.max_length),
                                                      temperature), s.y, LABELS)
               for name, s in held_out.items()}
    seconds = time.perf_counter() - start
    metrics = {
        "method": cfg.method, "epochs": cfg.train_epochs, "learning_rate": cfg.train_learning_rate,
        "temperature": temperature, "train_seconds": round(seconds, 1), "steps": trained.steps,
        "validation_ece_before": before.ece, "validation_ece_after": after.ece,
        "validation_nll_before": before.nll, "validation_nll_after": after.nll,
        **{f"{name}_macro_f1": m.macro_f1 for name, m in results.items()},
        **{f"{name}_accuracy": m.accuracy for name, m in results.items()},
        **{f"{name}_ece": m.ece for name, m in results.items()},
    }
    meta = {
        "method": cfg.method, "labels": list(LABELS), "temperature": temperature, "max_length": cfg.max_length,
        "encoder": encoder if model_cfg.encoder_model != "embedded" else "embedded:all-MiniLM-L6-v2",
        "parameters": n_params, "metrics": metrics, "data": data.files, "config": cfg.model_dump(),
        "history": trained.history, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "evaluation": {name: m.to_dict() for name, m in results.items()},
    }
    with atomic_directory(output) as tmp:
        if isinstance(trained.model, SetFitClassifier):
            from safetensors.torch import save_file

            trained.model.encoder.save_pretrained(tmp)
            save_file(trained.model.head.state_dict(), str(tmp / HEAD_FILE))
        else:
            trained.model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        atomic_write_json(tmp / META_FILE, meta)
        atomic_write_json(tmp / "metrics.json", metrics)
        reliability_diagram(
            {"before calibration": (softmax(val_logits), data.validation.y),
             f"after (T={temperature:.2f})": (softmax(val_logits, temperature), data.validation.y)},
            tmp / "reliability_validation.png", "classifier calibration on the validation split",
        )
    append({"final": metrics})
    logger.info("classifier saved to %s in %.0fs (log %s)", output, seconds, log)
    return ClassifierResult(output, metrics, seconds)
