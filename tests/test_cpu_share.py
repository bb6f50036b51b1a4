"""The engine's threads follow the cores other processes leave free (runtime/cpu_share.py)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from pz2.config import EngineConfig
from pz2.runtime.cpu_share import busy_elsewhere, free_threads, usable_cores
from pz2.runtime.engine_llamacpp import LlamaCppEngine


def _proc(root: Path, running: int, own_states: str) -> Path:
    """A /proc with `running` runnable tasks in all, of which our own threads are in `own_states`."""
    root.mkdir()
    (root / "stat").write_text(f"cpu  1 2 3 4\nprocs_running {running}\nprocs_blocked 0\n")
    for i, state in enumerate(own_states):
        task = root / "self" / "task" / str(100 + i)
        task.mkdir(parents=True)
        (task / "stat").write_text(f"{100 + i} (py thon) {state} 1 2 3\n")   # a name with a space, as comm may have
    return root


def test_the_tasks_of_other_processes_are_the_running_ones_less_ours(tmp_path: Path) -> None:
    assert busy_elsewhere(_proc(tmp_path / "a", 5, "RRS"), samples=3, interval_s=0) == 3
    assert busy_elsewhere(_proc(tmp_path / "b", 1, "R"), samples=3, interval_s=0) == 0


def test_a_cgroup_cpu_quota_caps_the_cores(tmp_path: Path) -> None:
    quota = tmp_path / "cpu.max"
    affinity = usable_cores(tmp_path / "absent")
    quota.write_text("max 100000\n")
    assert usable_cores(quota) == affinity
    quota.write_text("50000 100000\n")   # half a core: one thread
    assert usable_cores(quota) == 1
    quota.write_text(f"{100000 * (affinity + 4)} 100000\n")   # a quota above the affinity: the affinity
    assert usable_cores(quota) == affinity


def test_without_proc_every_core_is_used(tmp_path: Path) -> None:
    assert free_threads(tmp_path / "absent") == usable_cores()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "stat").write_text("cpu 1 2 3\n")
    assert free_threads(broken) == usable_cores()


@pytest.fixture()
def spinner() -> Iterator[None]:
    """Another process keeping one core busy."""
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(0.5)
    try:
        yield
    finally:
        child.kill()
        child.wait()


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="reads Linux's /proc")
def test_a_busy_process_beside_takes_a_core_from_the_count(spinner: None) -> None:
    assert busy_elsewhere() >= 1
    assert free_threads() <= max(1, usable_cores() - 1)


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="reads Linux's /proc")
def test_the_llamacpp_engine_decodes_on_the_free_cores(tiny_base: Path, tiny_gguf: Path, tmp_path: Path,
                                                       spinner: None) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_base)
    auto = LlamaCppEngine(tiny_gguf, tok, "Be brief.", EngineConfig(max_new_tokens=4, threads=0), cache_dir=tmp_path)
    fixed = LlamaCppEngine(tiny_gguf, tok, "Be brief.", EngineConfig(max_new_tokens=4, threads=3), cache_dir=tmp_path)
    try:
        assert auto.lib.llama_n_threads(auto.llm.ctx) == usable_cores()   # opened on every core
        auto.generate("Hello there")
        fixed.generate("Hello there")
        decoding = auto.lib.llama_n_threads(auto.decoder.ctx)
        assert decoding == auto.lib.llama_n_threads_batch(auto.decoder.ctx)
        assert 1 <= decoding <= max(1, usable_cores() - 1)   # the spinner's core is left to it
        assert fixed.lib.llama_n_threads(fixed.decoder.ctx) == 3   # a number in the config is kept
    finally:
        auto.close()
        fixed.close()
