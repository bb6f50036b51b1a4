"""Where a LoRA run checkpoints, and which checkpoint `--resume` may continue from.

Every run has its own `run-N/` folder, so a run started without `--resume` never deletes an earlier
run's checkpoints, and each holds `run.json`: what shapes its weights (the settings, the model trained
on, the data's hashes). `--resume` continues the newest run and nothing else: an earlier run is another
trajectory, and an adapter continued from it would carry a manifest that lies about its lineage. The
newest run's record must match this command's, or the refusal names each difference; a run killed
before its first checkpoint starts again in its own folder. A checkpoint is taken only when its files
are whole (a kill mid-save, a damaged disk); otherwise the run's previous one, said so.
"""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path
from typing import Any

from pz2.errors import ModelError, UsageError
from pz2.fileio import atomic_write_json
from pz2.models.artifacts import first_line

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"
# SFT settings a resumed run may change: when it stops, logs, evaluates and saves. The rest shape the weights.
SCHEDULE = frozenset({"max_steps", "epochs", "logging_steps", "eval_steps", "save_steps", "save_total_limit",
                      "max_eval_examples"})


def run_record(kind: str, sft: dict[str, Any], base: dict[str, Any], data: dict[str, str], precision: str) -> dict:
    """What defines a run's trajectory: `sft` (the config, dumped), the identity of the model it trains on,
    the data files' hashes and the compute precision."""
    return {"kind": kind, "sft": {k: v for k, v in sft.items() if k not in SCHEDULE},
            "base_model": {k: v for k, v in base.items() if k != "path"}, "data": data, "precision": precision}


def differences(then: dict[str, Any], now: dict[str, Any], prefix: str = "") -> list[str]:
    """Each key whose value differs between two run records, as `key: then -> now`."""
    out = []
    for key in sorted(then.keys() | now.keys()):
        a, b = then.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a} -> {b}")
    return out


def damage(checkpoint: Path) -> str | None:
    """What is broken in a checkpoint's files, or None when each is whole: torch's files are zip archives
    (every member's checksum is checked, nothing unpickled), safetensors must be as long as their header
    says, JSON must parse."""
    for f in sorted(p for p in checkpoint.iterdir() if p.is_file()):
        try:
            if f.suffix in (".pt", ".pth", ".bin"):
                with zipfile.ZipFile(f) as archive:
                    bad = archive.testzip()
                if bad is not None:
                    return f"{f.name}: {bad} fails its checksum"
            elif f.suffix == ".safetensors":
                _check_safetensors(f)
            elif f.suffix == ".json":
                json.loads(f.read_text(encoding="utf-8"))
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
            return f"{f.name}: {first_line(e)}"
    return None


def _check_safetensors(path: Path) -> None:
    with path.open("rb") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    if path.stat().st_size != 8 + size + end:
        raise ValueError(f"{path.stat().st_size} bytes where the header says {8 + size + end}: cut short")


def _checkpoints(run: Path) -> list[Path]:
    """The run's saved checkpoints, newest first."""
    done = [p for p in run.glob("checkpoint-*") if (p / "trainer_state.json").exists()]
    return sorted(done, key=lambda p: int(p.name.split("-")[1]), reverse=True)


def _number(p: Path) -> int:
    return int(p.name.split("-")[1]) if p.name.split("-")[-1].isdigit() else 0


def resume_point(root: Path, resume: bool, record: dict[str, Any], state: Any) -> tuple[Path, Path | None]:
    """Where this run checkpoints, and the checkpoint it continues from (None: from the start)."""
    runs = sorted((p for p in root.glob("run-*") if p.is_dir()), key=_number)
    if resume and runs:
        run = runs[-1]
        _same_settings(run, record)
        checkpoint = _newest_whole(run)
        if checkpoint is not None:
            return run, checkpoint
        logger.warning("--resume: %s stopped before its first checkpoint; it starts again from the beginning", run)
        if state.is_main_process:
            atomic_write_json(run / RUN_FILE, record)
        state.wait_for_everyone()
        return run, None
    if resume:
        legacy = _checkpoints(root)   # left by a pz2 that had no run folders: nothing to compare with
        if legacy:
            logger.warning("--resume: continuing %s, written before runs recorded their settings", legacy[0])
            return root, legacy[0]
        logger.warning("--resume: no run in %s to continue; starting one", root)
    if state.is_main_process:
        run = root / f"run-{_number(runs[-1]) + 1 if runs else 1}"
        run.mkdir(parents=True)
        atomic_write_json(run / RUN_FILE, record)
        kept = [p for p in [*runs, root] if _checkpoints(p)]
        if kept:
            logger.warning("a new run checkpoints in %s; the earlier runs' checkpoints stay in %s (`--resume` "
                           "continues the newest; delete them when no longer needed)", run,
                           ", ".join(str(p) for p in kept))
    state.wait_for_everyone()
    return max((p for p in root.glob("run-*") if p.is_dir()), key=_number), None


def _same_settings(run: Path, record: dict[str, Any]) -> None:
    try:
        then = json.loads((run / RUN_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        logger.warning("--resume: %s has no %s (an earlier pz2 wrote it): its settings cannot be compared", run,
                       RUN_FILE)
        return
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelError(f"{run / RUN_FILE}: damaged ({e}); start a new run without --resume") from None
    changed = differences(then, record)
    if changed:
        raise UsageError(f"--resume: {run.name} was started with other settings ({'; '.join(changed)}); resume "
                         "it with the same ones, or start a new run without --resume")


def _newest_whole(run: Path) -> Path | None:
    """The run's newest checkpoint whose files are whole; a damaged one is passed over with a warning."""
    broken = []
    for checkpoint in _checkpoints(run):
        problem = damage(checkpoint)
        if problem is None:
            if broken:
                logger.warning("--resume: %s is damaged (%s); continuing from %s", broken[0][0].name, broken[0][1],
                               checkpoint.name)
            return checkpoint
        broken.append((checkpoint, problem))
    if broken:
        raise ModelError(f"--resume: no whole checkpoint in {run} ({broken[0][0].name}: {broken[0][1]}); "
                         "start a new run without --resume")
    return None
