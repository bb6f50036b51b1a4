"""`pz2 demo`: the main job on a fresh machine, end to end on the embedded default model.

Today: generate the data, validate it, prepare the embedded base and let it answer once, train
the conversation-type classifier and label the seed's example sentences with it, then fine-tune
the unified model and both specialists (quick profile) and let each answer. The hybrid router
and the seed's five scenarios come next.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.rule import Rule
from rich.table import Table

from pz2.data.generate import SEED_EXAMPLES, generate
from pz2.data.validate import validate_directory
from pz2.models.base import greedy_reply, load_base
from pz2.models.prepare import base_token_counter, prepare_base
from pz2.runtime.classifier import ConversationClassifier
from pz2.models.loading import load_for_generation
from pz2.training.classifier import train_classifier
from pz2.training.sft import train_sft
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
                  "untuned base, transformers fp32)[/]", highlight=False)

    console.print(Rule("5. train the conversation-type classifier (about 4 minutes on 2 cores)"))
    result = train_classifier(ws, train_cfg.classifier, model_cfg)
    m = result.metrics
    console.print(f"saved to {result.path} in {result.seconds:.0f} s: macro-F1 {m['test_macro_f1']:.3f} on unseen "
                  f"topics, {m['challenge_macro_f1']:.3f} on hand-written text, "
                  f"{m.get('real_test_macro_f1', float('nan')):.3f} on human-written corpora; "
                  f"validation ECE {m['validation_ece_before']:.3f} -> {m['validation_ece_after']:.3f} after calibration")
    clf = ConversationClassifier.load(result.path)
    table = Table(title="the seed's example sentences")
    for col in ("text", "seed's label", "predicted", "confidence"):
        table.add_column(col)
    texts = [t for t, _ in SEED_EXAMPLES] + ["오늘 날씨 어때?"]
    expected = [c for _, c in SEED_EXAMPLES] + ["general"]
    for text, want, p in zip(texts, expected, clf.predict(texts), strict=True):
        table.add_row(text, want, p.label, f"{p.confidence:.2f}" + (f" ({p.note})" if p.note else ""))
    console.print(table)

    console.print(Rule("6. fine-tune the unified model and the specialists (LoRA, quick profile)"))
    sft_cfg = train_cfg.with_profile("quick")
    questions = {"unified": "I feel sad today", "qna": "What is the difference between lists and tuples in Python?",
                 "technical": "SketchUp expert mode advanced modeling"}
    for kind, question in questions.items():
        result = train_sft(ws, kind, sft_cfg, model_cfg, profile="quick")
        m = result.metrics
        console.print(f"[bold]{kind}[/]: {m['global_step']} steps in {result.seconds:.0f} s, validation loss "
                      f"{m['eval_loss']:.3f}, {m['train_tokens_per_s']:.0f} tokens/s -> {result.path}")
        tuned, tok = load_for_generation(model_cfg, result.path)
        reply = greedy_reply(tuned, tok, model_cfg.system_prompt, question, max_new_tokens=64)
        console.print(f"  [bold]User:[/] {question}\n  [bold]{kind}:[/] {reply}", highlight=False)
    return validation.ok and bool(answer)
