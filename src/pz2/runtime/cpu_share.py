"""How many threads one answer may use: the cores that other processes leave free at that moment.

llama.cpp's threads meet at a spinning barrier after every operation of the model's graph. When other
processes keep some cores busy, a thread that reaches the barrier first spins on a core a descheduled
sibling needs: an answer that takes 0.47 s alone with both cores took 2-4 s beside a second busy pz2
process (5.4x), and the issue's batch answer 332 s instead of 2 s. With as many threads as cores are
free, no thread waits for one that is not running, and two busy pz2 processes each get a core.

The count of running tasks over the whole machine is read from /proc/stat (`procs_running`, an instant
count) a few times over a few milliseconds; our own running threads are taken off, and the median is
kept, so a neighbour's short pause or burst does not decide. Where /proc is missing (not Linux), every
core is used, as before.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from pathlib import Path

SAMPLES = 5          # readings per decision
INTERVAL_S = 0.001   # between readings: 5 ms in all, against an answer of several hundred
PROC = Path("/proc")


CPU_QUOTA = Path("/sys/fs/cgroup/cpu.max")


def usable_cores(quota: Path = CPU_QUOTA) -> int:
    """The cores this process may run on: its affinity (`taskset`, a container's cpuset), capped by the
    cgroup's CPU quota (`docker --cpus 2` on a larger machine: "200000 100000" allows two)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:   # not Linux
        return os.cpu_count() or 1
    try:
        limit, period = quota.read_text().split()[:2]
    except (OSError, ValueError):
        return cores
    if limit == "max":
        return cores
    return max(1, min(cores, math.ceil(int(limit) / int(period))))


def _running_tasks(proc: Path) -> int:
    for line in (proc / "stat").read_text().splitlines():
        if line.startswith("procs_running "):
            return int(line.split()[1])
    raise OSError("no procs_running in /proc/stat")


def _own_running(proc: Path) -> int:
    """Our threads that are running or runnable (state R), the one reading included."""
    count = 0
    for task in (proc / "self" / "task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:   # the thread ended meanwhile
            continue
        if stat[stat.rindex(")") + 2] == "R":
            count += 1
    return count


def busy_elsewhere(proc: Path = PROC, samples: int = SAMPLES, interval_s: float = INTERVAL_S) -> int:
    """Tasks of other processes running now (the median of `samples` readings)."""
    readings = []
    for i in range(samples):
        if i:
            time.sleep(interval_s)
        readings.append(max(0, _running_tasks(proc) - _own_running(proc)))
    return int(statistics.median_low(readings))


def free_threads(proc: Path = PROC) -> int:
    """Threads for the next answer: the usable cores less those other processes keep busy, at least one."""
    cores = usable_cores()
    try:
        busy = busy_elsewhere(proc)
    except OSError:
        return cores
    return max(1, cores - busy)
