"""`pz2 serve` in its own process on 127.0.0.1, for the benchmarks that measure it from outside."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def pz2_serve(workspace: Path, log_path: Path, timeout_s: float = 300) -> Iterator[tuple[str, subprocess.Popen]]:
    """(its URL, the process) once /health says ok; terminated on leaving. The server's output goes to `log_path`."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        server = subprocess.Popen([sys.executable, "-m", "pz2", "--workspace", str(workspace), "serve", "--port",
                                   str(port)], stdout=log, stderr=subprocess.STDOUT,
                                  env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                assert server.poll() is None, f"pz2 serve exited; see {log_path}"
                try:
                    if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, f"pz2 serve not healthy after {timeout_s:.0f} s"
                time.sleep(0.5)
            yield url, server
        finally:
            server.terminate()
            server.wait(30)
