"""Probe `pz2 serve` as a hostile or unlucky client would (issue 27's probes, repeated on the real models).

Starts `pz2 serve` over the trained workspace on 127.0.0.1 (no key, the default), then:
1. 20 non-streaming clients ask for long answers and hang up after 1 s: seconds from the last one leaving
   until nothing runs or waits, and the next normal request's time and answer;
2. a message holding a lone UTF-16 surrogate ("hi \\ud800"), then a normal request on the same connection;
3. a 300 KB system message, plain and streamed;
4. `/metrics` size before and after `--names` requests naming made-up models (one with a NUL);
5. a request with another `Host` (DNS rebinding), and what is open without a key;
7. the decisions log with a cut last line (what a SIGKILL leaves), then one more turn: both lines readable?
Prints one line per probe and writes benchmarks/results/serve_probes.json. Loopback only; it stops by itself.

    python benchmarks/serve_probes.py            # ~2 min after `pz2 demo`
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

import httpx

from live_server import pz2_serve

from pz2.workspace import Workspace

RESULTS = Path(__file__).parent / "results" / "serve_probes.json"
LONG = "Explain in detail, step by step, how to set up a Python project with tests, packaging and CI."


def _gauges(url: str) -> tuple[float, float]:
    lines = httpx.get(f"{url}/metrics").text.splitlines()
    value = {line.split()[0]: float(line.split()[1]) for line in lines if line.startswith("pz2_requests_")
             and not line.startswith("pz2_requests_total")}
    return value.get("pz2_requests_running", 0.0), value.get("pz2_requests_waiting", 0.0)


def disconnects(url: str, clients: int = 20) -> dict:
    def leave() -> None:
        try:
            httpx.post(f"{url}/v1/chat/completions", timeout=1.0,
                       json={"model": "pz2-hybrid", "messages": [{"role": "user", "content": LONG}], "max_tokens": 400})
        except httpx.TimeoutException:
            pass

    threads = [threading.Thread(target=leave) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    left = time.monotonic()
    while _gauges(url) != (0.0, 0.0) and time.monotonic() - left < 120:
        time.sleep(0.05)
    idle_s = time.monotonic() - left
    start = time.monotonic()
    r = httpx.post(f"{url}/v1/chat/completions", timeout=300,
                   json={"model": "pz2-hybrid", "messages": [{"role": "user", "content": "What is DNS?"}]})
    return {"clients": clients, "idle_after_last_left_s": round(idle_s, 2), "next_status": r.status_code,
            "next_s": round(time.monotonic() - start, 2), "next_answer_chars": len(r.json()["choices"][0]["message"]["content"])}


def surrogate(url: str) -> dict:
    raw = b'{"model": "pz2-hybrid", "messages": [{"role": "user", "content": "hi \\ud800"}]}'
    out = {}
    with httpx.Client(base_url=url, timeout=120) as client:   # one keep-alive connection
        for name, body in (("plain", raw), ("stream", raw.replace(b'{"model"', b'{"stream": true, "model"'))):
            r = client.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
            out[name] = {"status": r.status_code, "error": r.json().get("error")}
        r = client.post("/v1/chat/completions", json={"model": "unified", "max_tokens": 8,
                                                       "messages": [{"role": "user", "content": "hi"}]})
        out["next_on_same_connection"] = r.status_code
    return out


def big_system(url: str) -> dict:
    out = {}
    for stream in (False, True):
        r = httpx.post(f"{url}/v1/chat/completions", timeout=120, json={
            "model": "pz2-hybrid", "stream": stream,
            "messages": [{"role": "system", "content": "rule " * 60_000}, {"role": "user", "content": "hi"}]})
        out["stream" if stream else "plain"] = {"status": r.status_code, "code": r.json()["error"]["code"]
                                                if r.status_code != 200 else None}
    return out


def made_up_models(url: str, names: int) -> dict:
    before = len(httpx.get(f"{url}/metrics").content)
    statuses = set()
    with httpx.Client(base_url=url, timeout=30) as client:
        for i in range(names):
            r = client.post("/v1/chat/completions", json={"model": f"made-up-{i}" + ("\x00" if i == 0 else ""),
                                                          "messages": [{"role": "user", "content": "hi"}]})
            statuses.add(r.status_code)
    after = httpx.get(f"{url}/metrics").content
    return {"names": names, "statuses": sorted(statuses), "metrics_bytes_before": before,
            "metrics_bytes_after": len(after), "ratio": round(len(after) / before, 2), "nul_in_metrics": b"\x00" in after}


def hosts(url: str) -> dict:
    body = {"model": "unified", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]}
    port = url.rsplit(":", 1)[1]
    return {"attacker.example": httpx.post(f"{url}/v1/chat/completions", json=body,
                                           headers={"host": f"attacker.example:{port}"}).status_code,
            "localhost": httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120,
                                    headers={"host": f"localhost:{port}"}).status_code,
            "open_without_key": {path: httpx.get(f"{url}{path}").status_code
                                 for path in ("/", "/health", "/metrics", "/docs", "/openapi.json", "/v1/models")}}


def cut_log(url: str, log: Path) -> dict:
    with log.open("ab") as f:
        f.write(b'{"time": 1, "answer": "cut by a kill')
    httpx.post(f"{url}/v1/chat/completions", timeout=120, json={"model": "unified", "max_tokens": 8,
                                                                  "messages": [{"role": "user", "content": "after"}]})
    last = log.read_text(encoding="utf-8").splitlines()[-1]
    try:
        readable = json.loads(last)["message"] == "after"
    except (json.JSONDecodeError, KeyError):
        readable = False
    return {"record_after_the_cut_line_readable": readable}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", type=Path, default=Path("finetuning"))
    ap.add_argument("--names", type=int, default=5000, help="Made-up model names sent to /v1/chat/completions.")
    args = ap.parse_args()
    ws = Workspace(args.workspace)
    results = {}
    with pz2_serve(ws.root, RESULTS.parent / "serve_probes.server.log") as (url, _):
        for name, probe in (("1 non-streaming disconnects", lambda: disconnects(url)),
                            ("2 lone surrogate", lambda: surrogate(url)),
                            ("3 300 KB system message", lambda: big_system(url)),
                            ("4 made-up model names", lambda: made_up_models(url, args.names)),
                            ("5 host names and what is open", lambda: hosts(url)),
                            ("7 decisions log after a cut line", lambda: cut_log(url, ws.assistant_logs / "decisions.jsonl"))):
            results[name] = probe()
            print(f"{name}: {json.dumps(results[name], ensure_ascii=False)}", flush=True)
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
