"""Unified answer speed per engine and weight format: time to first token, 48-token answer, tok/s.

Baseline, in the same process: transformers fp32 (the reference engine). Candidates: torch dynamic
int8 (transformers, Linear layers quantized), llama.cpp on the shipped Q4_1 GGUF, and llama.cpp on
exact F16/F32 GGUFs written from the prepared base. Every run answers the same prompts greedily with
the unified adapter when one is trained, forced to 48 new tokens (end-of-turn ignored) so the
formats do the same work; the shipped Q4_1 is also timed without the adapter, for what an
unmerged LoRA adds to every token.

Decode reads every weight once per token, so memory bandwidth sets a ceiling: the script measures
this machine's read bandwidth (numpy sums over 1 GiB, one thread per decode thread) and reports
each format's share of its ceiling (bandwidth / bytes of weights); a low share means the format
is bound by compute (dequantizing, small-matrix overheads), not by memory.

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

from pz2.config import ModelConfig
from pz2.fileio import atomic_write_json
from pz2.models.embedded import BASE
from pz2.models.gguf_export import write_model_gguf
from pz2.models.prepare import prepare_base
from pz2.runtime.engine import Engine
from pz2.runtime.engine_llamacpp import LlamaCppEngine, tokenizer_for
from pz2.runtime.engine_transformers import TransformersEngine

PROMPTS = ["How to draw a line in CAD software?", "I feel sad today", "What is a Python dictionary?",
           "How do I reset my Wi-Fi router?", "Explain photosynthesis simply."]
ADAPTER = Path("finetuning/models/unified_model/adapter")


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
    firsts, totals = [], []
    for _ in range(repeats):
        for prompt in PROMPTS:
            gen = engine.generate(prompt, adapter, tokens)
            firsts.append(gen.first_token_s)
            totals.append(gen.total_s)
    total = statistics.median(totals)
    return {"first_token_ms": 1000 * statistics.median(firsts), "answer_ms": 1000 * total,
            "tokens_per_s": tokens / total}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/engine_speed.json"))
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    cfg = ModelConfig()
    base_dir = prepare_base(cfg).path
    tokenizer = tokenizer_for(cfg)
    system = cfg.system_prompt
    adapter = "unified" if ADAPTER.exists() else None
    work = Path("benchmarks/results/gguf")
    work.mkdir(parents=True, exist_ok=True)

    bandwidth = read_bandwidth_gbs(args.threads)
    print(f"read bandwidth: {bandwidth:.1f} GB/s; adapter: {adapter or 'none (base)'}")
    results: dict[str, dict] = {}

    def record(name: str, engine: Engine, weight_bytes: int, with_adapter: bool = True) -> None:
        """`with_adapter=False`: the weights already hold the adapter (merged), or the bare base is the point."""
        if adapter and with_adapter:
            engine.load(adapter, ADAPTER)
        r = measure(engine, adapter if with_adapter else None, args.tokens, args.repeats)
        ceiling = bandwidth * 1e9 / weight_bytes
        r |= {"weights_mb": weight_bytes / 2**20, "ceiling_tokens_per_s": ceiling, "share_of_ceiling": r["tokens_per_s"] / ceiling}
        results[name] = r
        print(f"{name:28s} first token {r['first_token_ms']:7.1f} ms   {args.tokens} tokens {r['answer_ms']:7.1f} ms   "
              f"{r['tokens_per_s']:6.1f} tok/s   {r['share_of_ceiling']:.0%} of the {ceiling:.0f} tok/s ceiling", flush=True)

    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).eval()
    fp32_bytes = sum(p.numel() * 4 for p in model.parameters())
    record("transformers fp32", TransformersEngine(model, tokenizer, system, args.tokens), fp32_bytes)
    try:  # PEFT cannot wrap quantized layers: the adapter is merged first, then Linear layers quantized
        fresh = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).eval()
        if adapter:
            from peft import PeftModel

            fresh = PeftModel.from_pretrained(fresh, ADAPTER).merge_and_unload()
        int8 = torch.ao.quantization.quantize_dynamic(fresh, {torch.nn.Linear}, dtype=torch.qint8)
        linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
        record("transformers dynamic int8 (merged)", TransformersEngine(int8, tokenizer, system, args.tokens),
               fp32_bytes - 3 * linear, with_adapter=False)
    except (AttributeError, RuntimeError, NotImplementedError) as e:
        print(f"transformers dynamic int8: not available here ({e})")
    del model

    ggufs = {"llama.cpp Q4_1 (shipped)": BASE.path()}
    for dtype in ("f16", "f32"):
        path = work / f"base-{dtype}.gguf"
        if not path.exists():
            write_model_gguf(base_dir, path, BASE.path(), dtype)
        ggufs[f"llama.cpp {dtype.upper()}"] = path
    for name, path in ggufs.items():
        engine = LlamaCppEngine(path, tokenizer, system, args.tokens, threads=args.threads, cache_dir=work)
        if adapter and path == BASE.path():  # what an unmerged LoRA adds to every token
            record(f"{name}, bare base", engine, path.stat().st_size, with_adapter=False)
        record(name, engine, path.stat().st_size)
        del engine

    baseline = results["transformers fp32"]["answer_ms"]
    for r in results.values():
        r["speedup_vs_transformers_fp32"] = baseline / r["answer_ms"]
    atomic_write_json(args.out, {"tokens": args.tokens, "threads": args.threads, "read_bandwidth_gbs": bandwidth,
                                 "adapter": adapter, "results": results})
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
