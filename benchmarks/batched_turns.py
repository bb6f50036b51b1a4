"""Assistant turns answered side by side in one process, as `pz2 serve` answers them: what batching gives.

Loads the assistant over the trained workspace and asks the held-out classification test questions
(general, QnA and technical in the split's mix; about a fifth escalate to a specialist) from 1 and
from 8 threads at once, each question in its own session. Reports answer tokens/s, the time inside
llama.cpp's decode calls, the tokens they read (prompts and answers) and their number: the share of
the time the engine computes, and how many answers each call carries. Nothing else may run meanwhile.

    python benchmarks/batched_turns.py --workspace finetuning          # ~3 min after `pz2 demo`
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from decode_clock import DecodeClock

from pz2.data.loading import load_rows
from pz2.data.schema import FileKind
from pz2.runtime.assistant import Assistant
from pz2.workspace import Workspace

RESULTS = Path(__file__).parent / "results" / "batched_turns.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", type=Path, default=Path("finetuning"))
    ap.add_argument("--questions", type=int, default=48)
    args = ap.parse_args()
    ws = Workspace(args.workspace)
    assistant = Assistant.from_config(ws, ws.model_config(), log=False)
    questions = [r["text"] for r in load_rows(ws.datasets / "classification_test.jsonl",
                                              FileKind.CLASSIFICATION)][: args.questions]
    calls = DecodeClock(assistant.engine.decoder)

    def ask(i: int) -> tuple[int, bool]:
        turn = assistant.ask(questions[i], session=f"bench-{i}")
        return len(turn.generation.token_ids) if turn.generation else 0, turn.route != "unified"

    rows = []
    for threads in (1, 8, 1, 8):   # twice each, in turn: the run-to-run spread shows
        calls.reset()
        start = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            answers = list(pool.map(ask, range(len(questions))))
        wall = time.perf_counter() - start
        tokens = sum(n for n, _ in answers)
        row = {"threads": threads, "wall_s": wall, "answer_tokens": tokens,
               "tokens_per_s": tokens / wall, "escalated": sum(e for _, e in answers),
               "decode_s": calls.seconds, "decode_calls": calls.calls, "decoded_tokens": calls.tokens}
        rows.append(row)
        print(f"{threads} at once: {tokens / wall:5.1f} answer tokens/s "
              f"({tokens} in {wall:.1f} s, {row['escalated']} escalated); llama.cpp decode {calls.seconds:.1f} s "
              f"in {calls.calls} calls, {calls.tokens} tokens read", flush=True)
    for one, eight in ((rows[0], rows[1]), (rows[2], rows[3])):
        eight["vs_one"] = eight["tokens_per_s"] / one["tokens_per_s"]
        print(f"8 at once vs 1: {eight['vs_one']:.2f}x")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(rows, indent=2))
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
