"""The decisions log, `logs/assistant/decisions.jsonl`: one routing record per turn, what
`pz2 status` counts.

Each record goes out in one `write` on a file opened for appending, so turns of concurrent requests
never interleave within a line. A crash can leave the last line cut; the next record then starts on a
line of its own, so only the cut record is lost to a JSON reader, never the one after it.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path


class DecisionLog:
    def __init__(self, path: Path) -> None:
        self.path = path
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
            finally:
                os.close(fd)
