"""`pz2 demo`: the main job on a fresh machine, end to end on the embedded default model.

Today: generate the data, validate it, prepare the embedded base and let it answer once.
Later stages (training, evaluation, the seed's five scenarios) extend this list.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.rule import Rule

from pz2.data.generate import generate
from pz2.data.validate import validate_directory
from pz2.models.base import greedy_reply, load_base
from pz2.models.prepare import base_token_counter, prepare_base
from pz2.views import print_validation, rows_table
from pz2.workspace import Workspace


def run_demo(ws: Workspace, console: Console) -> bool:
    """Run every stage; True when the data validated clean and the base answered."""
    model_cfg, train_cfg = ws.model_config(), ws.training_config()

    console.print(Rule("1. generate the English datasets"))
    report = generate(train_cfg.data, model_cfg.system_prompt, ws.datasets)
    console.print(rows_table(f"{ws.datasets}  (seed {train_cfg.data.seed}, {report.seconds:.2f} s)", report.rows))

    console.print(Rule("2. prepare the embedded base model"))
    with console.status("converting SmolLM2-135M-Instruct (GGUF) to safetensors, once ..."):
        prepared = prepare_base(model_cfg)
    console.print(f"{'reused' if prepared.cached else 'converted'} in {prepared.seconds:.1f} s: {prepared.path}")

    console.print(Rule("3. validate the datasets"))
    validation = validate_directory(ws.datasets, train_cfg.validation, base_token_counter(model_cfg))
    print_validation(console, validation)

    console.print(Rule("4. the base model answers (not fine-tuned yet)"))
    model, tokenizer = load_base(model_cfg)
    question = "What is a Python dictionary?"
    start = time.perf_counter()
    answer = greedy_reply(model, tokenizer, model_cfg.system_prompt, question)
    console.print(f"[bold]User:[/] {question}\n[bold]Base:[/] {answer}\n[dim]({time.perf_counter() - start:.2f} s, "
                  "transformers fp32; fine-tuning and the hybrid router come next)[/]", highlight=False)
    return validation.ok and bool(answer)
