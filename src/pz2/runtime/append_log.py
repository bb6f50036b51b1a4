"""The assistant's append-only logs under `logs/assistant/`: `decisions.jsonl` (one routing record per
turn, what `pz2 status` counts) and `feedback.jsonl` (one rating per line, runtime/feedback.py).

Each record goes out in one `write` on a file opened for appending, so records of concurrent requests
never interleave within a line; the feedback log also syncs each one to disk (a rating is a person's
work, and rare). A crash can leave the last line cut; the next record then starts on a line of its own,
so only the cut record is lost, and `read_log` skips it with a warning instead of failing on it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

logger = logging.getLogger(__name__)


class AppendLog:
    def __init__(self, path: Path, sync: bool = False) -> None:
        """`sync`: each record reaches the disk before `write` returns (fsync)."""
        self.path, self.sync = path, sync
        self._lock = threading.Lock()

    def write(self, record: dict) -> None:
        line = (json.dumps({"time": time.time(), **record}, ensure_ascii=False) + "\n").encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                end = os.lseek(fd, 0, os.SEEK_END)
                if end:
                    os.lseek(fd, end - 1, os.SEEK_SET)
                    if os.read(fd, 1) != b"\n":
                        line = b"\n" + line
                os.write(fd, line)   # O_APPEND: at the end, wherever the offset was
                if self.sync:
                    os.fsync(fd)
            finally:
                os.close(fd)


def read_log(path: Path) -> list[dict]:
    """The records of a log, oldest first; none when it does not exist. A line that is not a JSON object
    (the cut last record of a killed writer) is skipped with a warning naming it."""
    if not path.is_file():
        return []
    records = []
    with path.open("rb") as f:
        for number, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                record, problem = None, str(e)
            else:
                problem = "not a JSON object"
            if isinstance(record, dict):
                records.append(record)
            else:
                logger.warning("%s:%d: skipped (%s): a record cut by a crash, or not this log's", path, number, problem)
    return records
