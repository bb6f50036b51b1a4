"""Unified answer speed per engine and weight format, the split of a token's time, and whole turns.

Every row answers the same prompts greedily, forced to 48 new tokens (end-of-turn ignored) so the
formats do the same work, in one process. The rows:
- the old default, the ratio's baseline: llama.cpp on the shipped Q4_1 base + the unified LoRA, no
  flash attention;
- the configured default, marked `"default": true`: the engine `build_engine` makes (the served
  base in `weights_format` + the unified LoRA, or the unified model merged in with `merge_unified`;
  flash attention as configured), and the same + a specialist LoRA (the expert route);
- bare bases in each format (Q4_1, Q4_0, Q8_0, F16): what the weights alone cost;
- the Q4_0 base + the unified LoRA, and the unified model merged into the base (no LoRA cost, but
  the 4-bit rounding loses the fine-tune: benchmarks/base_format.py);
- transformers fp32 + the unified LoRA, the reference engine.

Decode reads every weight once per token, so memory bandwidth sets a ceiling: the script measures
this machine's read bandwidth (numpy sums over 1 GiB, one thread per decode thread) and reports
each row's share of its ceiling (bandwidth / bytes of weights); a low share means the format is
bound by compute (dequantizing, small-matrix overheads, thread barriers), not by memory.

The split of a token's time: llama_decode (timed around `Llama.eval`) against everything else
in the loop (log-softmax and entropy over the vocabulary, repetition control, text streaming).
Whole turns: `Assistant.ask` on general messages (classifier + router + the unified answer, its
natural length), with the time to the first streamed piece.

    python benchmarks/engine_speed.py [--tokens 48] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from decode_clock import DecodeClock

from pz2.evaluation.eval_set import load_file
from pz2.fileio import atomic_write_json
from pz2.models.embedded import BASE
from pz2.models.gguf_export import write_model_gguf
from pz2.models.prepare import base_tokenizer, prepared_base_dir, served_base
from pz2.models.unified import served_unified
from pz2.runtime.assistant import Assistant
from pz2.runtime.engine import Engine, build_engine
from pz2.runtime.engine_llamacpp import LlamaCppEngine
from pz2.runtime.engine_transformers import TransformersEngine
from pz2.workspace import Workspace

PROMPTS = ["How to draw a line in CAD software?", "I feel sad today", "What is a Python dictionary?",
           "How do I reset my Wi-Fi router?", "Explain photosynthesis simply."]


def read_bandwidth_gbs(threads: int, size: int = 1 << 30, repeats: int = 5) -> float:
    """Read bandwidth with as many threads as the engines decode with: one thread alone reaches
    about half of what two do here, which would put the ceilings too low."""
    chunks = np.array_split(np.ones(size // 8, dtype=np.float64), threads)
    with ThreadPoolExecutor(threads) as pool:  # numpy releases the GIL while it sums
        best = min(_timed(lambda: list(pool.map(np.sum, chunks))) for _ in range(repeats))
    return size / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(engine: Engine, adapter: str | None, tokens: int, repeats: int) -> dict[str, float]:
    engine.stop_ids = set()  # same work for every format: exactly `tokens` new tokens
    engine.generate(PROMPTS[0], adapter, tokens)  # warm-up
    clock = DecodeClock(engine.decoder) if isinstance(engine, LlamaCppEngine) else None
    firsts, totals = [], []
    for _ in range(repeats):
        for prompt in PROMPTS:
            gen = engine.generate(prompt, adapter, tokens)
            firsts.append(gen.first_token_s)
            totals.append(gen.total_s)
    total = statistics.median(totals)
    r = {"first_token_ms": 1000 * statistics.median(firsts), "answer_ms": 1000 * total, "tokens_per_s": tokens / total}
    if clock is not None:
        clock.stop()
        steps = len(totals) * tokens
        r |= {"decode_ms_per_token": 1000 * clock.seconds / steps,
              "other_ms_per_token": 1000 * (sum(totals) - clock.seconds) / steps}
    return r


def whole_turns(ws: Workspace, repeats: int) -> dict[str, float]:
    """`Assistant.ask` on the general questions of the evaluation set: the turn as a user waits for it."""
    assistant = Assistant.from_config(ws, ws.model_config(), log=False)
    questions = [r.question for r in load_file(ws.datasets / "unified_test.jsonl") if r.category == "general"][:20]
    totals, firsts, tokens = [], [], []
    try:
        for _ in range(repeats):
            for q in questions:
                first: list[float] = []
                start = time.perf_counter()
                turn = assistant.ask(q, session=f"bench-{len(totals)}",
                                     on_text=lambda _s, _t: first or first.append(time.perf_counter() - start))
                totals.append(time.perf_counter() - start)
                firsts.append(first[0] if first else totals[-1])
                tokens.append(len(turn.generation.token_ids) if turn.generation else 0)
    finally:
        assistant.close()
    return {"turns": len(totals), "turn_ms_p50": 1000 * statistics.median(totals),
            "first_piece_ms_p50": 1000 * statistics.median(firsts), "answer_tokens_p50": statistics.median(tokens)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workspace", type=Path, default=Path("finetuning"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/engine_speed.json"))
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    ws = Workspace(args.workspace)
    cfg = ws.model_config()
    unified_adapter, specialist = ws.unified_model / "adapter", ws.specialist("qna")
    if not (unified_adapter / "adapter_config.json").exists():
        print(f"{unified_adapter}: train the unified model first (`pz2 train unified`)")
        return 2
    tokenizer = base_tokenizer(cfg)
    plain = cfg.runtime.engine.model_copy(update={"max_new_tokens": args.tokens, "threads": args.threads,
                                                  "no_repeat_ngram_size": 0})   # the engines' own decoding
    system = cfg.system_prompt
    work = Path("benchmarks/results/gguf")
    work.mkdir(parents=True, exist_ok=True)
    base, unified = served_base(cfg), served_unified(cfg, unified_adapter)

    bandwidth = read_bandwidth_gbs(args.threads)
    print(f"read bandwidth: {bandwidth:.1f} GB/s")
    results: dict[str, dict] = {}

    def record(name: str, engine: Engine, weight_bytes: int, adapter: tuple[str, Path] | None = None,
               unified_adapter: str | None = None, **extra) -> None:
        """`adapter`: load it and answer with it; `unified_adapter`: an adapter the engine already holds."""
        if adapter:
            engine.load(*adapter)
        r = measure(engine, adapter[0] if adapter else unified_adapter, args.tokens, args.repeats)
        ceiling = bandwidth * 1e9 / weight_bytes
        r |= {"weights_mb": weight_bytes / 2**20, "ceiling_tokens_per_s": ceiling,
              "share_of_ceiling": r["tokens_per_s"] / ceiling, **extra}
        results[name] = r
        split = f"   decode {r['decode_ms_per_token']:.2f} + other {r['other_ms_per_token']:.2f} ms/token" \
            if "decode_ms_per_token" in r else ""
        print(f"{name:44s} first token {r['first_token_ms']:6.1f} ms   {args.tokens} tokens {r['answer_ms']:6.1f} ms   "
              f"{r['tokens_per_s']:5.1f} tok/s   {r['share_of_ceiling']:.0%} of {ceiling:.0f} tok/s{split}", flush=True)

    def llama(path: Path, flash: bool = cfg.runtime.engine.flash_attention) -> LlamaCppEngine:
        return LlamaCppEngine(path, tokenizer, system, plain.model_copy(update={"flash_attention": flash}), cache_dir=work)

    shipped = BASE.path()
    old = llama(shipped, flash=False)   # the engine as it was before the fast path: no flash attention
    record("old default: Q4_1 shipped + unified LoRA", old, shipped.stat().st_size, ("unified", unified_adapter))
    del old
    default = build_engine(ws.model_config({"runtime.engine.threads": args.threads,
                                            "runtime.engine.max_new_tokens": args.tokens}), unified_adapter)
    default_name = f"default: {cfg.weights_format.upper()}" + (" unified merged" if default.unified is None else " + unified LoRA") \
        + (", flash attention" if cfg.runtime.engine.flash_attention else "")
    default.stop_ids = set()
    record(default_name, default, base.gguf.stat().st_size, unified_adapter=default.unified, default=True)
    if specialist.exists():
        record(f"{default_name} + qna LoRA (expert route)", default, base.gguf.stat().st_size, ("qna", specialist))
    del default
    formats = {cfg.weights_format: base.gguf}
    for fmt in ("q4_1", "q4_0", "q8_0", "f16"):
        if fmt not in formats:
            formats[fmt] = work / f"base-{fmt}.gguf"
            if not formats[fmt].exists():
                write_model_gguf(prepared_base_dir(cfg), formats[fmt], shipped, fmt)
    for fmt, path in formats.items():
        engine = llama(path)
        record(f"{fmt.upper()} bare base", engine, path.stat().st_size)
        if fmt == "q4_0":
            record("Q4_0 base + unified LoRA", engine, path.stat().st_size, ("unified", unified_adapter))
        del engine
    record(f"unified merged into {cfg.weights_format.upper()} (loses the fine-tune, base_format.py)",
           llama(unified.gguf), unified.gguf.stat().st_size)

    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base.path, dtype=torch.float32).eval()
    reference = TransformersEngine(model, tokenizer, system, plain)
    record("transformers fp32 + unified LoRA", reference, sum(p.numel() * 4 for p in model.parameters()),
           ("unified", unified_adapter))
    del model, reference

    old_ms = results["old default: Q4_1 shipped + unified LoRA"]["answer_ms"]
    for r in results.values():
        r["speedup_vs_old_default"] = old_ms / r["answer_ms"]
    turns = whole_turns(ws, max(1, args.repeats // 2))
    print(f"whole turn (classifier + router + unified answer, {turns['turns']} general messages): median "
          f"{turns['turn_ms_p50']:.0f} ms, first piece {turns['first_piece_ms_p50']:.0f} ms, "
          f"{turns['answer_tokens_p50']:.0f} tokens")
    print(f"default vs old default: {results[default_name]['speedup_vs_old_default']:.2f}x")
    atomic_write_json(args.out, {"tokens": args.tokens, "threads": args.threads, "read_bandwidth_gbs": bandwidth,
                                 "weights_format": cfg.weights_format, "results": results, "whole_turn": turns})
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
