"""Load on `pz2 serve`: 1, 8 and 32 concurrent streaming clients against the hybrid model.

Starts `pz2 serve` as its own process on 127.0.0.1 (a free port) over the trained workspace, waits
for /health, then for each level runs that many clients for `--duration` seconds; each client
streams one question after another from the held-out classification test split (general, QnA and
technical in the split's mix), and no new request starts after the deadline. Reports requests/s,
answer tokens/s, p50/p95 time to first token and total latency, status codes (5xx must be 0),
and the tokens/s ratio of 8 clients to 1. Loopback only; it stops by itself.

    python benchmarks/serve_load.py                       # ~4 min after `pz2 demo`
    python benchmarks/serve_load.py --duration 10 --levels 1,8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections import Counter
from pathlib import Path

import httpx

from live_server import pz2_serve

from pz2.data.loading import load_rows
from pz2.data.schema import FileKind
from pz2.workspace import Workspace

RESULTS = Path(__file__).parent / "results" / "serve_load.json"


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


async def _client(http: httpx.AsyncClient, questions: list[str], start: int, deadline: float, out: dict) -> None:
    i = start
    while time.monotonic() < deadline:
        body = {"model": "pz2-hybrid", "messages": [{"role": "user", "content": questions[i % len(questions)]}],
                "stream": True, "stream_options": {"include_usage": True}}
        i += 1
        sent = time.monotonic()
        first = None
        try:
            async with http.stream("POST", "/v1/chat/completions", json=body) as r:
                out["status"][r.status_code] += 1
                if r.status_code != 200:
                    await r.aread()
                    continue
                async for line in r.aiter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    chunk = json.loads(line[6:])
                    if first is None and any(c["delta"].get("content") for c in chunk.get("choices", [])):
                        first = time.monotonic() - sent
                    if chunk.get("usage"):
                        out["tokens"] += chunk["usage"]["completion_tokens"]
                    if chunk.get("pz2"):
                        out["routes"][chunk["pz2"]["route"]] += 1
        except httpx.HTTPError as e:
            out["status"][f"error: {type(e).__name__}"] += 1
            continue
        out["total"].append(time.monotonic() - sent)
        if first is not None:
            out["first"].append(first)


async def _level(url: str, clients: int, duration: float, questions: list[str]) -> dict:
    out = {"status": Counter(), "tokens": 0, "routes": Counter(), "first": [], "total": []}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as http:
        start = time.monotonic()
        await asyncio.gather(*(_client(http, questions, k * 7, start + duration, out) for k in range(clients)))
        wall = time.monotonic() - start
    done = len(out["total"])
    return {
        "clients": clients, "wall_s": round(wall, 1), "requests": done, "requests_per_s": done / wall,
        "tokens_per_s": out["tokens"] / wall,
        "ttft_p50_s": _pct(out["first"], 50), "ttft_p95_s": _pct(out["first"], 95),
        "latency_p50_s": _pct(out["total"], 50), "latency_p95_s": _pct(out["total"], 95),
        "status": {str(k): v for k, v in out["status"].items()},
        "5xx": sum(v for k, v in out["status"].items() if isinstance(k, int) and k >= 500),
        "routes": dict(out["routes"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", type=Path, default=Path("finetuning"))
    ap.add_argument("--duration", type=float, default=60.0, help="Seconds per level.")
    ap.add_argument("--levels", default="1,8,32", help="Concurrent clients per level, comma-separated.")
    args = ap.parse_args()
    ws = Workspace(args.workspace)
    questions = [row["text"] for row in load_rows(ws.datasets / "classification_test.jsonl", FileKind.CLASSIFICATION)]

    with pz2_serve(ws.root, RESULTS.parent / "serve_load.server.log") as (url, _):
        results = []
        for clients in (int(c) for c in args.levels.split(",")):
            r = asyncio.run(_level(url, clients, args.duration, questions))
            results.append(r)
            fmt = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
            print(f"{clients:3d} clients: {r['requests']:4d} requests, {r['requests_per_s']:.2f} req/s, "
                  f"{r['tokens_per_s']:6.1f} tokens/s, TTFT p50 {fmt(r['ttft_p50_s'])} s p95 {fmt(r['ttft_p95_s'])} s, "
                  f"latency p50 {fmt(r['latency_p50_s'])} s p95 {fmt(r['latency_p95_s'])} s, 5xx {r['5xx']}, "
                  f"status {r['status']}, routes {r['routes']}", flush=True)
        metrics = httpx.get(f"{url}/metrics").text
    by = {r["clients"]: r for r in results}
    ratio = by[8]["tokens_per_s"] / by[1]["tokens_per_s"] if 1 in by and 8 in by and by[1]["tokens_per_s"] else None
    if ratio is not None:
        print(f"tokens/s, 8 clients vs 1: {ratio:.2f}x")
    RESULTS.write_text(json.dumps({"levels": results, "tokens_per_s_8_vs_1": ratio, "duration_s": args.duration,
                                   "metrics_after": metrics}, indent=2))
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
