"""`pz2 data import` of 10,000 conversations (issue 26's target: 30 s on 2 cores), timed end to end as a user
runs it (a `pz2` process: start-up, reading, conversion, validation, writing), against the baseline of
the same process reading the file alone (`python -c` parsing every JSONL line).

Cases: OpenAI `messages` JSONL and Alpaca Parquet with a category column; and, when the workspace has a
trained classifier (`--workspace`, e.g. after `make demo`), the JSONL labelled by the classifier.
A third of the conversations are multi-turn, a quarter carry their own system message.

    python benchmarks/import_speed.py [--workspace finetuning] [--rows 10000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "import_speed.json"
REPO = Path(__file__).resolve().parents[1]


def conversations(n: int) -> list[dict]:
    out = []
    for i in range(n):
        category = ("technical", "qna", "general")[i % 3]
        turns = [{"role": "user", "content": f"Conversation {i}: how do I rotate a component in SketchUp, case {i}?"},
                 {"role": "assistant", "content": f"Select it, press Q, click the centre, then turn it ({i})."}]
        if i % 3 == 0:
            turns += [{"role": "user", "content": f"And copy it while rotating, case {i}?"},
                      {"role": "assistant", "content": f"Press Ctrl once before the second click ({i})."}]
        if i % 4 == 0:
            turns = [{"role": "system", "content": "You support SketchUp users."}, *turns]
        out.append({"messages": turns, "topic": category})
    return out


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--workspace", type=Path, default=REPO / "finetuning")
    args = parser.parse_args()
    import datasets

    tmp = Path(tempfile.mkdtemp(prefix="pz2-import-bench-"))
    try:
        rows = conversations(args.rows)
        jsonl = tmp / "chats.jsonl"
        jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
        parquet = tmp / "alpaca.parquet"
        datasets.Dataset.from_list([{"instruction": r["messages"][-2]["content"], "input": "",
                                     "output": r["messages"][-1]["content"], "topic": r["topic"]}
                                    for r in rows]).to_parquet(str(parquet))
        pz2 = [sys.executable, "-m", "pz2", "--workspace", str(args.workspace), "data", "import"]
        baseline = timed([sys.executable, "-c", "import json, sys; [json.loads(l) for l in open(sys.argv[1])]", str(jsonl)])
        cases = {"messages JSONL, category column": [*pz2, str(jsonl), "--category-column", "topic"],
                 "Alpaca Parquet, category column": [*pz2, str(parquet), "--category-column", "topic"]}
        if (args.workspace / "models" / "unified_model" / "classifier").is_dir():
            cases["messages JSONL, classifier labels"] = [*pz2, str(jsonl)]
        results = {"rows": args.rows, "baseline_read_s": round(baseline, 2), "cases": {}}
        print(f"{args.rows} conversations; reading the JSONL alone: {baseline:.2f} s")
        for name, cmd in cases.items():
            seconds = timed([*cmd, "--output", str(tmp / "out")])
            results["cases"][name] = {"seconds": round(seconds, 2), "vs_read": round(seconds / baseline, 1)}
            print(f"{name:36s} {seconds:6.2f} s  ({seconds / baseline:.1f}x reading it)")
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
