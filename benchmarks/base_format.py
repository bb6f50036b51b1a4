"""What the fast path's two re-quantizations cost, on the unified validation split.

1. The base: the shipped Q4_1 GGUF re-quantized to Q4_0 (a second rounding of the same weights).
2. The unified model: its LoRA merged into the Q4_0 base and the sum quantized to Q4_0 again,
   against the same adapter served unmerged on the Q4_0 base (what it was trained on).

Each pair is compared by the perplexity of the reference answers (transformers, float32, on the
exact values each GGUF holds) and by greedy agreement (llama.cpp, flash attention off in both, so
only the weights differ): the share of answers that are identical, and the mean share of each
answer's tokens produced before the two first part.

    python benchmarks/base_format.py [--rows 200] [--answers 100] [--tokens 48]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from pz2.evaluation.model_loss import reference_losses, summarize_losses
from pz2.fileio import atomic_write_json
from pz2.models.embedded import BASE
from pz2.models.prepare import prepared_base_dir, served_base
from pz2.models.unified import served_unified
from pz2.runtime.engine_llamacpp import LlamaCppEngine, tokenizer_for
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
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/base_format.json"))
    args = parser.parse_args()

    ws = Workspace(args.workspace)
    cfg = ws.model_config()
    adapter = ws.unified_model / "adapter"
    examples = subsample(load_examples(data_files(ws, "unified")[1], "unified", cfg.system_prompt), args.rows, 0)
    questions = [ex.user for ex in examples[: args.answers]]
    base = served_base(cfg)
    models = {"Q4_1 shipped base": prepared_base_dir(cfg), f"{cfg.weights_format.upper()} base": base.path}
    if (adapter / "adapter_config.json").exists():
        unified = served_unified(cfg, adapter)
        models |= {"unified, LoRA unmerged": adapter, f"unified merged, {cfg.weights_format.upper()}": unified.path}
    perplexity = {}
    for name, path in models.items():
        perplexity[name] = summarize_losses(reference_losses(cfg, path, examples))["perplexity"]
        print(f"{name:32s} perplexity of the references {perplexity[name]:.3f}", flush=True)

    tokenizer = tokenizer_for(cfg)

    def answers(gguf: Path, lora: Path | None = None) -> list[list[int]]:
        engine = LlamaCppEngine(gguf, tokenizer, cfg.system_prompt, args.tokens, threads=2, cache_dir=cfg.cache_dir)
        if lora is not None:
            engine.load("unified", lora)
        return [engine.generate(q, "unified" if lora else None, args.tokens).token_ids for q in questions]

    shipped, requantized = answers(BASE.path()), answers(base.gguf)
    greedy = {"base: Q4_1 vs re-quantized": agreement(shipped, requantized)}
    if "unified, LoRA unmerged" in models:
        greedy["unified: unmerged vs merged"] = agreement(answers(base.gguf, adapter), answers(unified.gguf))
    for name, g in greedy.items():
        print(f"{name:32s} identical answers {g['identical']:.2f}, shared prefix {g['shared_prefix']:.2f}")
    atomic_write_json(args.out, {"rows": len(examples), "answers": len(questions), "tokens": args.tokens,
                                 "weights_format": cfg.weights_format, "perplexity": perplexity, "greedy": greedy})
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
