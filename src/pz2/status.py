"""What exists in a workspace: datasets, models, checkpoints, the prepared base (the seed's "ft -> 상태 확인")."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from pz2.config import ModelConfig
from pz2.data.schema import SPECIALIST_CATEGORIES as SPECIALISTS
from pz2.errors import ModelError
from pz2.knowledge.index import MANIFEST
from pz2.models.artifacts import read_json
from pz2.models.loading import MANIFEST as MODEL_MANIFEST
from pz2.models.loading import adapter_dir
from pz2.models.prepare import served_base, served_base_dir
from pz2.models.served import base_id, is_embedded
from pz2.models.unified import merges, unified_id
from pz2.runtime.confidence import CONFIDENCE_FILE, threshold_for
from pz2.runtime.feedback import DECISIONS_FILE, FEEDBACK_FILE
from pz2.workspace import Workspace


@dataclass(frozen=True)
class Entry:
    group: str                     # "dataset", "model", "checkpoint", "base"
    name: str
    path: str
    size_bytes: int
    modified: str                  # ISO 8601, UTC
    rows: int | None = None        # datasets
    metrics: dict = field(default_factory=dict)  # models: metrics.json or manifest.json["metrics"]


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _modified(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc).isoformat(timespec="seconds")


def _rows(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


def _read(path: Path, fix: str) -> dict:
    """A JSON record, or {"error": its one-line problem}: status shows a broken artefact, never stops at one."""
    try:
        return read_json(path, fix)
    except ModelError as e:
        return {"error": str(e)}


def _metrics(directory: Path) -> dict:
    for name, key in (("metrics.json", None), ("manifest.json", "metrics")):
        file = directory / name
        if file.is_file():
            data = _read(file, "retrain this model")
            if "error" in data:
                return data
            metrics = data.get(key) if key else data
            return metrics if isinstance(metrics, dict) else {}
    return {}


def _threshold(raw: dict, model_cfg: ModelConfig) -> dict:
    """The confidence threshold the router uses and where it comes from: the configured one, or the one an
    escalation budget reads from the fit's validation curve."""
    router = model_cfg.runtime.router
    budget = router.escalation_budget
    if budget is None or "error" in raw:
        return {"threshold": router.confidence_threshold, "threshold_from": "runtime.router.confidence_threshold"}
    try:
        value = threshold_for(raw.get("curve") or [], budget)
    except ModelError as e:
        return {"threshold_from": f"escalation_budget {budget}: {e}"}
    return {"threshold": round(value, 4), "threshold_from": f"escalation_budget {budget} on {len(raw['curve'])} "
            "validation answers"}


def collect(ws: Workspace, model_cfg: ModelConfig) -> list[Entry]:
    entries: list[Entry] = []
    for directory in sorted(p for p in ws.datasets.parent.glob("*") if p.is_dir()):
        for f in sorted(directory.glob("*.jsonl")):
            entries.append(Entry("dataset", f"{directory.name}/{f.name}", str(f), _size(f), _modified(f), rows=_rows(f)))
    if ws.models.is_dir():
        markers = ("config.json", "adapter_config.json", "manifest.json")
        for d in sorted(p for p in ws.models.rglob("*") if p.is_dir() and any((p / m).exists() for m in markers)):
            entries.append(Entry("model", str(d.relative_to(ws.models)), str(d), _size(d), _modified(d),
                                 metrics=_metrics(d) | _staleness(ws, d, model_cfg)))
    confidence = ws.unified_model / CONFIDENCE_FILE
    if confidence.is_file():
        raw = _read(confidence, "refit with `pz2 train confidence`")
        metrics = raw if "error" in raw else raw.get("metrics") if isinstance(raw.get("metrics"), dict) else {}
        shown = {k: metrics[k] for k in ("rows", "good_rate", "ece", "auc", "error") if k in metrics}
        shown |= {f"{kind}_{k}": metrics[kind][k] for kind in ("generated", "human") if isinstance(metrics.get(kind), dict)
                  for k in ("ece", "auc")}
        entries.append(Entry("model", "unified_model/confidence (router)", str(confidence), _size(confidence),
                             _modified(confidence), metrics=shown | _threshold(raw, model_cfg)))
    for name, what in ((DECISIONS_FILE, "assistant decisions"), (FEEDBACK_FILE, "ratings of answers")):
        log = ws.assistant_logs / name
        if log.is_file():
            entries.append(Entry("log", what, str(log), _size(log), _modified(log), rows=_rows(log)))
    entries += _latest_comparison(ws)
    entries += _knowledge(ws)
    if ws.checkpoints.is_dir():
        for d in sorted(p for p in ws.checkpoints.glob("*") if p.is_dir()):
            entries.append(Entry("checkpoint", d.name, str(d), _size(d), _modified(d)))
    if is_embedded(model_cfg):
        base = served_base_dir(model_cfg)
        if base.is_dir():
            entries.append(Entry("base", base.name, str(base), _size(base), _modified(base),
                                 metrics={"architecture": "llama", "format": model_cfg.weights_format}))
    else:
        entries.append(_own_base(model_cfg))
    return entries


def _own_base(model_cfg: ModelConfig) -> Entry:
    """The base of your own in use: its architecture, hash, and the GGUF llama.cpp serves (once written)."""
    try:
        served = served_base(model_cfg)
    except ModelError as e:
        return Entry("base", model_cfg.base_model, model_cfg.base_model, 0, "", metrics={"error": str(e)})
    who = served.identity
    gguf = str(served.gguf) if served.gguf and served.gguf.is_file() else "not written yet (written on first llama.cpp use)"
    return Entry("base", who.id, str(served.path), _size(served.path), _modified(served.path),
                 metrics={"architecture": who.architecture, "sha256": who.sha256[:12], "gguf": gguf})


def _staleness(ws: Workspace, directory: Path, model_cfg: ModelConfig) -> dict:
    """For a specialist: which model it was trained on, and `stale` when that is not the model served
    now (with `merge_unified`, retraining the unified model makes every specialist stale)."""
    if directory not in {ws.specialist(kind) for kind in SPECIALISTS}:
        return {}
    if not (directory / MODEL_MANIFEST).is_file():
        return {}
    manifest = _read(directory / MODEL_MANIFEST, "retrain the adapter")
    trained = manifest.get("base_model", {}).get("id") if isinstance(manifest.get("base_model"), dict) else None
    if trained is None:
        return {"error": manifest.get("error", f"{directory / MODEL_MANIFEST}: no `base_model`; retrain the adapter")}
    unified = ws.unified_model / "adapter"
    try:
        current = unified_id(adapter_dir(unified)) if merges(model_cfg, unified) else base_id(model_cfg)
    except ModelError as e:
        return {"trained_on": trained, "error": str(e)}
    if trained == current:
        return {"trained_on": trained}
    kind = next(k for k in SPECIALISTS if ws.specialist(k) == directory)
    return {"trained_on": trained, "stale": f"the model served now is {current}; "
                                             f"retrain with `pz2 train specialist --type {kind}`"}


def _latest_eval(ws: Workspace, key: str) -> tuple[Path, dict] | None:
    """The newest evaluation run whose metrics.json has `key` ("architectures": compare, "retrieval": kb)."""
    runs = sorted(ws.eval_logs.glob("*/metrics.json"), key=lambda p: p.stat().st_mtime) if ws.eval_logs.is_dir() else []
    for path in reversed(runs):
        m = _read(path, "rerun the evaluation")
        if key in m:
            return path, m
    return None


def _latest_comparison(ws: Workspace) -> list[Entry]:
    """The newest `pz2 eval compare` run: one entry per architecture and per model, and the router."""
    found = _latest_eval(ws, "architectures")
    if found is None:
        return []
    path, m = found
    name, size, modified = path.parent.name, _size(path.parent), _modified(path)
    try:
        metric = m["quality_metric"]
        out = [Entry("eval", f"{name} {arch}", str(path), size, modified, rows=m["rows"], metrics={
            metric: a["quality"]["all"][metric], "factual_accuracy": a["quality"]["all"]["factual_accuracy"],
            "p50_ms": a["latency"]["total_ms"]["p50"], "escalation_rate": a["escalation_rate"]})
            for arch, a in m["architectures"].items()]
        out += [Entry("eval", f"{name} model {model}", str(path), size, modified, rows=x["rows"], metrics={
            metric: x["quality"]["all"][metric], "factual_accuracy": x["quality"]["all"]["factual_accuracy"],
            "perplexity": x["perplexity"]}) for model, x in m["models"].items()]
        r = m["router"]
        out.append(Entry("eval", f"{name} router", str(path), size, modified, rows=r["rows"],
                         metrics={k: r[k] for k in ("apgr", "cpt50", "cpt80", "threshold") if r.get(k) is not None}))
    except (KeyError, TypeError) as e:
        return [Entry("eval", name, str(path), size, modified, metrics={"error": f"metrics.json unreadable ({e})"})]
    return out


def _knowledge(ws: Workspace) -> list[Entry]:
    """The knowledge index (`pz2 kb build`) and the newest `pz2 eval kb` run."""
    out = []
    manifest = ws.knowledge / MANIFEST
    if manifest.is_file():
        m = _read(manifest, "rebuild with `pz2 kb build`")
        try:
            metrics = {"documents": len(m["documents"]), "skipped": len(m["skipped"]), "built": m["built"],
                       **{name: c["chunks"] for name, c in m["collections"].items()}}
        except (KeyError, TypeError, AttributeError) as e:
            metrics, m = {"error": m.get("error") or f"{manifest}: unreadable ({e}); rebuild with `pz2 kb build`"}, {}
        out.append(Entry("knowledge", "index", str(ws.knowledge), _size(ws.knowledge), _modified(manifest),
                         rows=m.get("chunks"), metrics=metrics))
    found = _latest_eval(ws, "retrieval")
    if found is not None:
        path, m = found
        try:
            metrics = {k: m["retrieval"].get(k) for k in ("recall@1", "recall@3", "mrr@10")}
            for name, modes in m.get("models", {}).items():
                metrics[f"{name} factual"] = f"{modes['without']['factual_accuracy']:.2f}→{modes['with']['factual_accuracy']:.2f}"
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            metrics = {"error": f"{path}: unreadable ({e}); rerun `pz2 eval kb`"}
        out.append(Entry("eval", f"{path.parent.name} grounding", str(path), _size(path.parent), _modified(path),
                         rows=m.get("rows"), metrics=metrics))
    return out


def as_dicts(entries: list[Entry]) -> list[dict]:
    return [asdict(e) for e in entries]
