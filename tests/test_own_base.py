"""A base of your own, of each family: tiny random models built here (config -> save_pretrained), then
the pipeline on each: a LoRA trained for a few steps, the assistant answering on both engines (the same
greedy tokens on a float base where llama.cpp serves the architecture; a one-line notice and the
transformers engine where it does not), export, and a mismatched adapter refused."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import REPO, SFT_FAST

from pz2.config import DataConfig, ModelConfig, SFTConfig
from pz2.data.generate import generate
from pz2.errors import ModelError
from pz2.workspace import Workspace

# A chat template without a system role, as Gemma's: it raises on one (with ChatML tokens, which the
# tiny models' vocabulary has).
NO_SYSTEM_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}<|im_start|>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>model\n{% endif %}"
)
SIZES = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=512)
FAMILIES = {   # model_type -> (extra config, served by llama.cpp?)
    "llama": ({}, True),
    "mistral": ({"sliding_window": None}, True),
    "qwen2": ({"tie_word_embeddings": True}, True),
    "gemma": ({"head_dim": 16}, True),
    "gemma2": ({"head_dim": 16, "query_pre_attn_scalar": 16, "sliding_window": 256}, True),
    "phi3": ({"sliding_window": None}, True),
    "gpt_neox": ({}, False),   # transformers trains and serves it; pz2 writes no GGUF for it
}
SYSTEM = ModelConfig().system_prompt


def build_family(model_type: str, tokenizer_dir: Path, out: Path) -> Path:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    if model_type == "gemma2":
        tokenizer.chat_template = NO_SYSTEM_TEMPLATE
    config = AutoConfig.for_model(model_type, vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                                  eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                                  **SIZES, **FAMILIES[model_type][0])
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():   # wider than the default init, so greedy decoding is not a run of near-ties
        for p in model.parameters():
            if p.ndim == 2:
                p.normal_(0, 0.08)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module", params=list(FAMILIES))
def family_ws(request, hybrid_ws: Workspace, model_cache: Path, tmp_path_factory: pytest.TempPathFactory):
    """(model_type, a workspace whose base_model is a tiny model of that family, with the hybrid
    workspace's classifier, and a unified adapter and a QnA specialist trained on it for a few steps)."""
    from pz2.models.prepare import embedded_tokenizer_dir
    from pz2.training.sft import train_sft

    model_type = request.param
    root = tmp_path_factory.mktemp(model_type)
    base = build_family(model_type, embedded_tokenizer_dir(ModelConfig(cache_dir=model_cache)), root / "base")
    ws = Workspace(root / "finetuning")
    shutil.copytree(REPO / "finetuning" / "configs", ws.configs)
    path = ws.configs / "model_config.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg.update(cache_dir=str(model_cache), base_model=str(base))
    cfg["runtime"]["engine"].update(max_new_tokens=10, specialist_max_new_tokens=10, threads=2, flash_attention=False)
    cfg["runtime"]["pool"]["preload"] = False
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    generate(DataConfig(per_category=20), SYSTEM, ws.datasets)
    shutil.copytree(hybrid_ws.classifier, ws.classifier)
    for kind in ("unified", "qna"):
        train_sft(ws, kind, SFTConfig(**SFT_FAST), ws.model_config())
    return model_type, ws


def _answer(ws: Workspace, backend: str):
    """(engine name, a turn the unified model answers, a turn the QnA specialist answers)."""
    from pz2.runtime.assistant import Assistant

    assistant = Assistant.from_config(ws, ws.model_config({"runtime.engine.backend": backend}), log=False)
    try:
        unified = assistant.ask("hi there, how is your day going?", session="a")
        specialist = assistant.ask("What is the capital of France? expert mode", session="b")
        return assistant.engine.name, unified, specialist
    finally:
        assistant.close()


def test_a_lora_trains_on_every_family_and_records_its_base(family_ws) -> None:
    from peft import PeftConfig

    model_type, ws = family_ws
    adapter = ws.unified_model / "adapter"
    manifest = json.loads((adapter / "manifest.json").read_text())
    base = manifest["base_model"]
    assert base["architecture"] == model_type and base["path"] == ws.model_config().base_model
    assert len(base["sha256"]) == 64
    linear = {"phi3": 4, "gpt_neox": 4}.get(model_type, 7)   # Phi-3 and GPT-NeoX fuse q/k/v and the MLP's input
    assert len({name.split(".")[-1] for name in PeftConfig.from_pretrained(adapter).target_modules}) == linear


def test_both_engines_answer_alike_or_llama_cpp_says_why_not(family_ws, caplog) -> None:
    model_type, ws = family_ws
    _, reference, expert = _answer(ws, "transformers")
    with caplog.at_level(logging.WARNING, logger="pz2.runtime.engine"):
        name, fast, fast_expert = _answer(ws, "llamacpp")
    assert reference.generation.token_ids, "the tiny model answered something"
    assert (expert.route, expert.specialist, fast_expert.specialist) == ("specialist", "qna", "qna")
    if FAMILIES[model_type][1]:
        assert name == "llamacpp"
        assert fast.generation.token_ids == reference.generation.token_ids
        assert fast_expert.generation.token_ids == expert.generation.token_ids   # the specialist's LoRA GGUF
        assert (fast.route, fast.category) == (reference.route, reference.category)
    else:
        assert name == "transformers"
        notice = [r.getMessage() for r in caplog.records if "llama.cpp cannot serve" in r.getMessage()]
        assert len(notice) == 1 and "the transformers engine serves it" in notice[0], caplog.text


def test_a_template_without_a_system_role_gets_it_in_the_first_user_turn(family_ws) -> None:
    from transformers import AutoTokenizer

    from pz2.models.chat import (
        ChatExample,
        encode_example,
        has_system_role,
        prompt_text,
    )

    model_type, ws = family_ws
    tokenizer = AutoTokenizer.from_pretrained(ws.model_config().base_model)
    assert has_system_role(tokenizer) is (model_type != "gemma2")
    prompt = prompt_text(tokenizer, SYSTEM, "What is DNS?")
    if model_type == "gemma2":
        assert f"<|im_start|>user\n{SYSTEM}\n\nWhat is DNS?<|im_end|>" in prompt and "system" not in prompt
    example = encode_example(tokenizer, ChatExample(SYSTEM, "What is DNS?", "It names hosts."), 512)
    # training masks exactly the prompt inference generates from, and learns to stop
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert example["input_ids"][: len(prompt_ids)] == prompt_ids
    assert example["labels"][-1] == tokenizer.convert_tokens_to_ids("<|im_end|>")


def test_export_merges_the_adapter_into_a_model_of_the_family(family_ws, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from pz2.export import export_merged
    from pz2.models.loading import load_trained

    model_type, ws = family_ws
    cfg = ws.model_config()
    out = export_merged(cfg, ws.unified_model, tmp_path / "merged")
    assert json.loads((out / "config.json").read_text())["model_type"] == model_type
    merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    tuned, _ = load_trained(cfg, ws.unified_model)
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, tuned(ids).logits, atol=1e-4)


def test_an_adapter_of_another_family_is_refused(family_ws, hybrid_ws: Workspace) -> None:
    from pz2.runtime.engine import build_engine

    model_type, ws = family_ws
    engine = build_engine(ws.model_config())
    with pytest.raises(ModelError, match="trained on .* but the engine serves"):
        engine.load("foreign", hybrid_ws.unified_model / "adapter")   # trained on the hybrid workspace's tiny llama


def test_status_shows_the_base_in_use_and_token_limits_use_its_tokenizer(family_ws) -> None:
    from transformers import AutoTokenizer

    from pz2 import status
    from pz2.models.prepare import base_token_counter

    model_type, ws = family_ws
    cfg = ws.model_config()
    base = next(e for e in status.collect(ws, cfg) if e.group == "base")
    assert base.name == cfg.base_model and base.metrics["architecture"] == model_type
    text = "How do I add a modifier in Blender?"
    tokenizer = AutoTokenizer.from_pretrained(cfg.base_model)
    assert base_token_counter(cfg)([text]) == [len(tokenizer(text, add_special_tokens=False)["input_ids"])]


def test_a_hub_id_in_the_local_cache_is_its_snapshot_folder(tiny_base: Path, tmp_path: Path, monkeypatch) -> None:
    import huggingface_hub.constants

    from pz2.models.prepare import resolve_base

    snapshot = tmp_path / "models--someone--tiny" / "snapshots" / "0123abc"
    shutil.copytree(tiny_base, snapshot)
    (tmp_path / "models--someone--tiny" / "refs").mkdir()
    (tmp_path / "models--someone--tiny" / "refs" / "main").write_text("0123abc")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    assert Path(resolve_base(ModelConfig(base_model="someone/tiny"))) == snapshot
    with pytest.raises(ModelError, match="not a model in the local Hugging Face cache"):
        resolve_base(ModelConfig(base_model="someone/other"))


def test_eval_and_the_api_run_on_the_family(family_ws, tmp_path: Path) -> None:
    import openai
    from conftest import live_server, wait_healthy
    from typer.testing import CliRunner

    from pz2.cli import app
    from pz2.config import ServingConfig
    from pz2.runtime.assistant import Assistant
    from pz2.serving.app import create_app

    model_type, ws = family_ws
    report = CliRunner().invoke(app, ["--workspace", str(ws.root), "eval", "generation", "--model",
                                      str(ws.unified_model), "--limit", "2", "--max-new-tokens", "4",
                                      "--output", str(tmp_path / "eval")])
    assert report.exit_code == 0, report.output
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["rows"] == 2
    api = create_app(lambda: Assistant.from_config(ws, ws.model_config(), log=False), ServingConfig(), model_type, None)
    with live_server(api) as url:
        wait_healthy(url)
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=60)
        reply = client.chat.completions.create(model="pz2-hybrid", messages=[{"role": "user", "content": "hello"}])
    assert reply.choices[0].finish_reason in ("stop", "length") and reply.usage.completion_tokens > 0
