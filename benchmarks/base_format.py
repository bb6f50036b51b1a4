"""What the fast path's shortcuts cost, on the unified validation split.

1. Re-quantizing the base: the shipped Q4_1 GGUF written again in `--format` (Q4_0 by default), a
   second rounding of the same weights.
2. Merging the unified adapter: its LoRA folded into the served base and the sum written in each of
   `--merge-formats`, against the same adapter served unmerged (what it was trained with).

Each pair is compared by the perplexity of the reference answers (transformers, float32, on the
exact values each GGUF holds) and by greedy agreement (llama.cpp, flash attention off in both, so
only the weights differ): the share of answers that are identical, and the mean share of each
answer's tokens produced before the two first part.

    python benchmarks/base_format.py [--rows 200] [--answers 100] [--format q4_0] [--merge-formats q4_1,q8_0]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from pz2.evaluation.model_loss import reference_losses, summarize_losses
from pz2.fileio import atomic_write_json
from pz2.models.embedded import BASE
from pz2.config import EngineConfig
from pz2.models.prepare import base_tokenizer, prepared_base_dir, served_base, write_served
from pz2.models.unified import merge_adapter
from pz2.runtime.engine_llamacpp import LlamaCppEngine
from pz2.training.sft_data import data_files, load_examples, subsample
from pz2.workspace import Workspace


def agreement(a: list[list[int]], b: list[list[int]]) -> dict[str, float]:
    def common(x: list[int], y: list[int]) -> float:
        n = next((i for i, (s, t) in enumerate(zip(x, y)) if s != t), min(len(x), len(y)))
        return n / max(len(x), len(y), 1)

    return {"identical": sum(x == y for x, y in zip(a, b, strict=True)) / len(a),
            "shared_prefix": statistics.mean(common(x, y) for x, y in zip(a, b, strict=True))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", type=Path, default=Path("finetuning"))
    parser.add_argument("--rows", type=int, default=200, help="validation rows for perplexity")
    parser.add_argument("--answers", type=int, default=100, help="validation questions for greedy agreement")
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--format", default="q4_0", help="the re-quantized base to compare with the shipped Q4_1")
    parser.add_argument("--merge-formats", default="q4_1,q8_0", help="formats the merged unified model is written in")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/base_format.json"))
    args = parser.parse_args()

    ws = Workspace(args.workspace)
    cfg = ws.model_config()
    adapter = ws.unified_model / "adapter"
    examples = subsample(load_examples(data_files(ws, "unified")[1], "unified", cfg.system_prompt), args.rows, 0)
    questions = [ex.user for ex in examples[: args.answers]]
    tokenizer = base_tokenizer(cfg)
    plain = EngineConfig(max_new_tokens=args.tokens, threads=2, flash_attention=False, no_repeat_ngram_size=0)
    base = served_base(cfg)
    perplexity: dict[str, float] = {}
    greedy: dict[str, dict[str, float]] = {}

    def ppl(name: str, path: Path) -> None:
        perplexity[name] = summarize_losses(reference_losses(cfg, path, examples))["perplexity"]
        print(f"{name:36s} perplexity of the references {perplexity[name]:.3f}", flush=True)

    def answers(gguf: Path, lora: Path | None = None) -> list[list[int]]:
        engine = LlamaCppEngine(gguf, tokenizer, cfg.system_prompt, plain, cache_dir=cfg.cache_dir)
        if lora is not None:
            engine.load("unified", lora)
        return [engine.generate(q, "unified" if lora else None, args.tokens).token_ids for q in questions]

    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        ppl("shipped Q4_1 base", prepared_base_dir(cfg))
        requantized = write_served(prepared_base_dir(cfg), work / "base", args.format, BASE.path(), {"id": "requantized"})
        ppl(f"base re-quantized to {args.format.upper()}", requantized.path)
        greedy[f"base: shipped Q4_1 vs {args.format.upper()}"] = agreement(answers(BASE.path()), answers(requantized.gguf))
        if (adapter / "adapter_config.json").exists():
            ppl("unified, LoRA unmerged", adapter)
            unmerged = answers(base.gguf, adapter)
            merged = merge_adapter(cfg, base, adapter, work / "merged")
            for fmt in args.merge_formats.split(","):
                served = write_served(merged, work / f"unified-{fmt}", fmt, BASE.path(), {"id": f"merged-{fmt}"})
                ppl(f"unified merged, {fmt.upper()}", served.path)
                greedy[f"unified: unmerged vs merged {fmt.upper()}"] = agreement(unmerged, answers(served.gguf))
    for name, g in greedy.items():
        print(f"{name:36s} identical answers {g['identical']:.2f}, shared prefix {g['shared_prefix']:.2f}")
    atomic_write_json(args.out, {"rows": len(examples), "answers": len(questions), "tokens": args.tokens,
                                 "weights_format": cfg.weights_format, "perplexity": perplexity, "greedy": greedy})
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
