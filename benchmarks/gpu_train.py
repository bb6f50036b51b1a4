"""LoRA training on a GPU through pz2's own `train unified`, against a plain transformers `Trainer`, and
the transformers engine's answer time, on randomly initialised bases of real shapes (no download).

Shapes (this tokenizer's vocabulary, 49,152 words, for all three):
- `135m`: SmolLM2-135M (30 layers, width 576, tied embeddings);
- `1.7b`: SmolLM2-1.7B (24 layers, width 2048, tied embeddings);
- `8b`: Llama-3-8B's dimensions (32 layers, width 4096, 8 key/value heads, untied).

Per shape, in one process: the base is built from its config and saved in the precision training
uses (bf16 on a GPU that has it, fp16 on an older one, float32 on a CPU); then
- pz2: `train_sft(kind="unified")` on a generated workspace, exactly what `pz2 train unified` runs
  (masked prompts, the LM head at labelled positions only, length-grouped batches, gradient
  checkpointing as `sft.gradient_checkpointing` decides: on for a GPU);
- baseline: transformers `Trainer` with its default causal-LM collator (pads to the longest row and
  computes the full-sequence loss), the same LoRA on the same rows, batch size, steps, precision and
  checkpointing.
Reported: non-padding tokens/s, seconds per step, peak GPU memory, and model FLOPs utilisation =
6 * N * tokens/s / the GPU's dense bf16 peak (N = the base's parameters; the peak used is printed,
`--peak-tflops` sets another), and pz2's tokens/s over the baseline's.

Then the transformers engine (`runtime.engine.device` / `dtype`) answers one prompt with exactly 48
new tokens on the 1.7B shape (the 135M one on a CPU-only machine): on the GPU in its dtype and on the
CPU in float32, and the ratio.

On a machine without a GPU it runs the 135M shape only, and says so.

    python benchmarks/gpu_train.py [--shapes 135m,1.7b,8b] [--steps 30] [--batch-size 8]
    python benchmarks/gpu_train.py --steps 2 --batch-size 2 --max-length 64 --rows 32   # a quick CPU check
"""

from __future__ import annotations

import argparse
import gc
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from pz2.config import DataConfig, EngineConfig, ModelConfig, SFTConfig, load_config, save_config
from pz2.fileio import atomic_write_json
from pz2.models.precision import Placement, gpu_dtype
from pz2.training.sft import Device
from pz2.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
VOCAB = 49_152
SHAPES: dict[str, dict[str, Any]] = {
    "135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                 num_key_value_heads=3, tie_word_embeddings=True, rope_theta=100_000.0),
    "1.7b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=24, num_attention_heads=32,
                 num_key_value_heads=32, tie_word_embeddings=True, rope_theta=130_000.0),
    "8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=8, tie_word_embeddings=False, rope_theta=500_000.0),
}
# Dense bf16 tensor-core peaks (no sparsity), in TFLOP/s, from the vendors' data sheets.
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0, "4090": 165.0}


def build_base(shape: str, tokenizer_dir: Path, out: Path, dtype: torch.dtype, device: torch.device) -> int:
    """A randomly initialised Llama of `shape`, saved with the embedded base's tokenizer; its parameter count."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(vocab_size=VOCAB, max_position_embeddings=8192, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **SHAPES[shape])
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with device:                     # initialised where it trains: an 8B init on a CPU takes minutes
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    n = sum(p.numel() for p in model.parameters())
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    del model
    return n


def workspace(root: Path, base: Path, rows: int) -> Workspace:
    """The repository's configs with `base_model` set to `base`, and generated data."""
    from pz2.data.generate import generate

    shutil.copytree(REPO / "finetuning" / "configs", root / "configs")
    model_yaml = root / "configs" / "model_config.yaml"
    cfg = load_config(ModelConfig, model_yaml, {"base_model": str(base), "cache_dir": str(root / "cache")})
    save_config(cfg, model_yaml)
    ws = Workspace(root)
    generate(DataConfig(per_category=max(10, rows // 3 + 1)), cfg.system_prompt, ws.datasets)
    return ws


def release() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gb() -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None


def run_pz2(ws: Workspace, cfg: SFTConfig) -> dict[str, Any]:
    from pz2.training.sft import train_sft

    release()
    result = train_sft(ws, "unified", cfg, ws.model_config())
    m = result.metrics
    return {"tokens_per_s": m["train_tokens_per_s"], "seconds_per_step": m["train_runtime_s"] / m["global_step"],
            "steps": m["global_step"], "tokens": m["tokens_seen"], "peak_gpu_gb": peak_gb(),
            "train_loss": m["train_loss"]}


def run_baseline(ws: Workspace, cfg: SFTConfig, device_dtype: torch.dtype, checkpointing: bool,
                 out: Path) -> dict[str, Any]:
    """A plain Trainer: default collator and full-sequence loss, the same LoRA, rows and settings."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForLanguageModeling, Trainer, TrainingArguments

    from pz2.models.chat import encode_example
    from pz2.models.transformers_names import checkpointing_arguments
    from pz2.training.sft_data import data_files, load_examples, subsample

    release()
    model_cfg = ws.model_config()
    base = model_cfg.base_model
    tokenizer = AutoTokenizer.from_pretrained(base)
    rows = subsample(load_examples(data_files(ws, "unified")[0], "unified", model_cfg.system_prompt),
                     cfg.max_train_examples, cfg.seed)
    encoded = (encode_example(tokenizer, row, cfg.max_length) for row in rows)
    dataset = [{"input_ids": e["input_ids"]} for e in encoded if e is not None]
    torch.manual_seed(cfg.seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=device_dtype)
    model = get_peft_model(model, LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                                             target_modules="all-linear", task_type="CAUSAL_LM"))
    args = TrainingArguments(output_dir=str(out), per_device_train_batch_size=cfg.batch_size, max_steps=cfg.max_steps,
                             learning_rate=cfg.learning_rate, logging_steps=cfg.max_steps, save_strategy="no",
                             report_to="none", seed=cfg.seed, bf16=device_dtype is torch.bfloat16,
                             fp16=device_dtype is torch.float16, use_cpu=not torch.cuda.is_available(),
                             include_num_input_tokens_seen="non_padding", disable_tqdm=True,
                             **checkpointing_arguments(checkpointing))
    trainer = Trainer(model=model, args=args, train_dataset=dataset,
                      data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False))
    output = trainer.train()
    seconds = output.metrics["train_runtime"]
    tokens = int(trainer.state.num_input_tokens_seen)
    result = {"tokens_per_s": tokens / seconds, "seconds_per_step": seconds / trainer.state.global_step,
              "steps": trainer.state.global_step, "tokens": tokens, "peak_gpu_gb": peak_gb(),
              "train_loss": output.training_loss}
    del trainer, model
    return result


def answer_seconds(ws: Workspace, placement: Placement, tokens: int = 48, repeats: int = 3) -> dict[str, Any]:
    """The transformers engine's time for exactly `tokens` new tokens (end-of-turn ignored), best of `repeats`."""
    from pz2.models.base import load_base
    from pz2.runtime.engine_transformers import TransformersEngine

    release()
    cfg = ws.model_config()
    model, tokenizer = load_base(cfg, placement=placement)
    engine = TransformersEngine(model, tokenizer, cfg.system_prompt,
                                EngineConfig(max_new_tokens=tokens, no_repeat_ngram_size=0))
    engine.stop_ids = set()
    engine.generate("warm up", None, 4)
    times = []
    for _ in range(repeats):
        if placement.device.type == "cuda":
            torch.cuda.synchronize()
        g = engine.generate("How do I install a Python package?", None, tokens)
        times.append(g.total_s)
        assert len(g.token_ids) == tokens
    del engine, model
    return {"device": str(placement.device), "dtype": str(placement.dtype).removeprefix("torch."),
            "seconds": min(times), "tokens": tokens}


def peak_tflops(given: float | None) -> tuple[float | None, str]:
    if given:
        return given, "--peak-tflops"
    if not torch.cuda.is_available():
        return None, "no GPU"
    name = torch.cuda.get_device_name()
    for key, value in PEAK_TFLOPS.items():
        if key in name:
            return value, f"{name}: dense bf16 peak"
    return None, f"{name}: peak unknown (give --peak-tflops)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default="135m,1.7b,8b", help="comma-separated: 135m, 1.7b, 8b")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--rows", type=int, default=600, help="training rows (the steps cycle through them)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak, if not in the table")
    parser.add_argument("--engine-shape", default="1.7b", help="the shape whose 48-token answer is timed")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "gpu_train.json")
    args = parser.parse_args()

    from pz2.models.prepare import embedded_tokenizer_dir

    gpu = torch.cuda.is_available()
    shapes = args.shapes.split(",")
    engine_shape = args.engine_shape
    note = None
    if not gpu:
        shapes, engine_shape = ["135m"], "135m"
        note = "no CUDA GPU here: the 135M shape only, in float32 on the CPU; MFU and the GPU answer are not measured"
        print(note, flush=True)
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown:
        parser.error(f"unknown shape(s) {unknown}; choose from {list(SHAPES)}")
    dtype = gpu_dtype() if gpu else torch.float32
    device = torch.device("cuda" if gpu else "cpu")
    peak, peak_source = peak_tflops(args.peak_tflops)
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name() if gpu else 'CPU'}, {dtype}; "
          f"peak {peak} TFLOP/s ({peak_source})", flush=True)
    report: dict[str, Any] = {"device": torch.cuda.get_device_name() if gpu else "cpu", "dtype": str(dtype),
                              "peak_tflops": peak, "peak_source": peak_source, "note": note,
                              "steps": args.steps, "batch_size": args.batch_size, "max_length": args.max_length,
                              "shapes": {}}
    with tempfile.TemporaryDirectory(prefix="pz2-gpu-train-") as tmp:
        root = Path(tmp)
        tokenizer_dir = embedded_tokenizer_dir(ModelConfig(cache_dir=root / "cache"))
        for shape in dict.fromkeys([*shapes, engine_shape] if gpu else shapes):
            base = root / f"base-{shape}"
            n = build_base(shape, tokenizer_dir, base, dtype, device)
            ws = workspace(root / f"ws-{shape}", base, args.rows)
            entry: dict[str, Any] = {"parameters": n}
            if shape in shapes:
                cfg = SFTConfig(max_steps=args.steps, batch_size=args.batch_size, max_length=args.max_length,
                                max_train_examples=args.rows, max_eval_examples=8, eval_steps=10**6,
                                save_steps=10**6, logging_steps=max(1, args.steps // 3))
                checkpointing = Device.detect(cfg).checkpointing
                ours = run_pz2(ws, cfg)
                baseline = run_baseline(ws, cfg, dtype, checkpointing, root / "baseline-out")
                for name, result in (("pz2", ours), ("baseline", baseline)):
                    result["mfu"] = 6 * n * result["tokens_per_s"] / (peak * 1e12) if peak else None
                entry.update(pz2=ours, baseline=baseline, gradient_checkpointing=checkpointing,
                             speedup=ours["tokens_per_s"] / baseline["tokens_per_s"])
                print(f"{shape}: {n / 1e9:.2f}B parameters; pz2 {ours['tokens_per_s']:,.0f} tokens/s, "
                      f"{ours['seconds_per_step']:.2f} s/step, MFU {_pct(ours['mfu'])}, peak {_gb(ours['peak_gpu_gb'])}; "
                      f"baseline {baseline['tokens_per_s']:,.0f} tokens/s, MFU {_pct(baseline['mfu'])}, "
                      f"peak {_gb(baseline['peak_gpu_gb'])}; pz2 / baseline {entry['speedup']:.2f}x", flush=True)
            if shape == engine_shape:
                answers = {"cpu": answer_seconds(ws, Placement(torch.device("cpu"), torch.float32))}
                if gpu:
                    answers["gpu"] = answer_seconds(ws, Placement(device, dtype))
                    answers["cpu_over_gpu"] = answers["cpu"]["seconds"] / answers["gpu"]["seconds"]
                entry["answer_48_tokens"] = answers
                print(f"{shape}: transformers engine, 48 tokens: " + ", ".join(
                    f"{k} {v['seconds']:.2f} s ({v['dtype']})" for k, v in answers.items() if isinstance(v, dict))
                    + (f"; the GPU {answers['cpu_over_gpu']:.1f}x faster" if gpu else ""), flush=True)
            report["shapes"][shape] = entry
            shutil.rmtree(base)
    atomic_write_json(args.out, report)
    print(f"written: {args.out}")
    return 0


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def _gb(x: float | None) -> str:
    return "n/a (CPU)" if x is None else f"{x:.1f} GiB"


if __name__ == "__main__":
    sys.exit(main())
