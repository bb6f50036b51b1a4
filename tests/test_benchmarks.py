"""The GPU training benchmark's CPU mode: what a machine without a GPU can measure of it, measured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.integration   # trains a 135M model twice


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU mode; on a GPU the benchmark measures every shape")
def test_the_gpu_benchmark_on_a_cpu_trains_the_135m_shape_both_ways_and_says_so(tmp_path: Path) -> None:
    out = tmp_path / "gpu_train.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_train.py"), "--steps", "2", "--batch-size", "2",
                          "--max-length", "64", "--rows", "32", "--out", str(out)],
                         env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "the 135M shape only" in run.stdout
    report = json.loads(out.read_text())
    assert list(report["shapes"]) == ["135m"] and report["peak_tflops"] is None
    shape = report["shapes"]["135m"]
    assert shape["parameters"] == 134_515_008, "SmolLM2-135M's real shape"
    for run_name in ("pz2", "baseline"):
        result = shape[run_name]
        assert result["steps"] == 2 and result["tokens"] > 0 and result["tokens_per_s"] > 0
        assert result["mfu"] is None and result["peak_gpu_gb"] is None
    assert shape["speedup"] == pytest.approx(shape["pz2"]["tokens_per_s"] / shape["baseline"]["tokens_per_s"])
    answer = shape["answer_48_tokens"]
    assert list(answer) == ["cpu"] and answer["cpu"]["tokens"] == 48 and answer["cpu"]["seconds"] > 0
