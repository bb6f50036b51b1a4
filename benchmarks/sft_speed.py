"""Training throughput of pz2's SFT against a plain transformers Trainer, in one process.

Same base (the embedded SmolLM2-135M, float32, CPU), same LoRA, same rows, same batch size and
step count. Throughput counts real (non-padding) input tokens per second of training.

- baseline: `Trainer` with the default causal-LM collator (`DataCollatorForLanguageModeling`,
  mlm=False: pads to the longest row, labels every token), no packing;
- pz2: masked prompts and the LM head only at labelled positions; then with batches of similar
  length (the default); then with packing instead.
Each pz2 variant's validation loss (masked, unpacked rows) after the same number of steps is
printed too; a packed step holds more rows, so compare packing's loss per token seen.

    python benchmarks/sft_speed.py [--steps 12] [--batch-size 8] [--rows 400]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from pz2.config import SFTConfig
from pz2.fileio import atomic_write_json
from pz2.models.chat import encode_example
from pz2.models.prepare import resolve_base
from pz2.training.sft_data import CompletionCollator, completion_loss, data_files, load_examples, pack, subsample, tokenize
from pz2.workspace import Workspace


def _lora_model(base: str, cfg: SFTConfig):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(cfg.seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    lora = LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                      target_modules=list(cfg.lora.target_modules), task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def _run(name: str, model, dataset, collator, steps: int, batch: int, loss_func=None, eval_dataset=None,
         sampling: str = "random") -> dict:
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(output_dir=f"/tmp/pz2-bench-{name}", per_device_train_batch_size=batch,
                             per_device_eval_batch_size=batch, max_steps=steps, learning_rate=2e-4,
                             logging_steps=steps, save_strategy="no", report_to="none", seed=42,
                             remove_unused_columns=False, dataloader_pin_memory=False,
                             include_num_input_tokens_seen="non_padding", disable_tqdm=True,
                             train_sampling_strategy=sampling)
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator,
                      compute_loss_func=loss_func, eval_dataset=eval_dataset)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    tokens = int(trainer.state.num_input_tokens_seen)
    result = {"seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds}
    if eval_dataset is not None:
        result["eval_loss"] = trainer.evaluate()["eval_loss"]
    print(f"{name:18s} {tokens:7d} tokens in {seconds:6.1f} s = {result['tokens_per_s']:6.1f} tokens/s"
          + (f"   validation loss {result['eval_loss']:.4f}" if "eval_loss" in result else ""), flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", type=Path, default=Path("finetuning"))
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rows", type=int, default=400)
    args = parser.parse_args()
    from transformers import AutoTokenizer, DataCollatorForLanguageModeling

    ws = Workspace(args.workspace)
    model_cfg, cfg = ws.model_config(), ws.training_config().sft
    base = resolve_base(model_cfg)
    tok = AutoTokenizer.from_pretrained(base)
    train_path, val_path = data_files(ws, "unified")
    rows = subsample(load_examples(train_path, "unified", model_cfg.system_prompt), args.rows, cfg.seed)
    val = tokenize(subsample(load_examples(val_path, "unified", model_cfg.system_prompt), 64, cfg.seed), tok, cfg.max_length)
    masked = tokenize(rows, tok, cfg.max_length)
    plain = [{"input_ids": encode_example(tok, ex, cfg.max_length)["input_ids"]} for ex in rows]

    results = {"baseline": _run("baseline", _lora_model(base, cfg), plain,
                                DataCollatorForLanguageModeling(tok, mlm=False), args.steps, args.batch_size)}
    variants = (("head at labels", masked, "random"), ("+ length groups", masked, "group_by_length"),
                ("+ packing", pack(masked, cfg.max_length), "random"))
    for name, data, sampling in variants:
        model = _lora_model(base, cfg)
        results[name] = _run(name, model, data, CompletionCollator(tok.pad_token_id, head_at_labels=True), args.steps,
                             args.batch_size, completion_loss(model.get_output_embeddings()), val, sampling)
    base_tps = results["baseline"]["tokens_per_s"]
    ratios = {name: r["tokens_per_s"] / base_tps for name, r in results.items() if name != "baseline"}
    print("throughput / baseline:", {k: round(v, 2) for k, v in ratios.items()})
    atomic_write_json(Path("benchmarks/results/sft_speed.json"), {"results": results, "ratios": ratios,
                                                                   "steps": args.steps, "batch_size": args.batch_size})
    return 0


if __name__ == "__main__":
    sys.exit(main())
