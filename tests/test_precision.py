"""The GPU's code path on the CPU: LoRA training in bf16 mixed precision, the transformers engine in
bfloat16, and the device/dtype/precision keys. bf16 runs on a CPU (slowly, correctly), so what a GPU
does differently from float32 (half-precision weights, float32 outputs from accelerate, autocast)
is exercised where CI runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer

from conftest import SFT_FAST
from pz2.config import ModelConfig, SFTConfig
from pz2.errors import ConfigError
from pz2.models.chat import ChatExample, encode_example
from pz2.models.precision import Placement, resolve_device, training_dtype
from pz2.training.sft import Device, train_sft
from pz2.training.sft_data import CompletionCollator, completion_loss
from pz2.workspace import Workspace

SYSTEM = ModelConfig().system_prompt
NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusals of a machine without a GPU")


def _losses(log_dir: Path) -> list[float]:
    rows = [json.loads(line) for line in (log_dir / "log.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


@pytest.fixture(scope="module")
def learnable_base(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path) -> Path:
    """The tiny base's shape with embeddings large enough for a LoRA to move its predictions within a few
    steps (at the usual 0.02 init every logit is near zero and the loss sits at log(vocabulary))."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig.from_pretrained(tiny_base)
    config.initializer_range, config.hidden_size, config.intermediate_size = 0.3, 64, 128
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("learnable-base")
    LlamaForCausalLM(config).save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_base).save_pretrained(path)
    return path


def test_a_lora_trains_in_bf16_on_the_cpu_with_a_finite_falling_loss(workspace: Workspace, learnable_base: Path) -> None:
    from pz2.config import DataConfig
    from pz2.data.generate import generate

    path = workspace.configs / "model_config.yaml"
    path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), "base_model": str(learnable_base)}))
    generate(DataConfig(per_category=10), SYSTEM, workspace.datasets)
    fast = {**SFT_FAST, "max_steps": 24, "save_steps": 24, "eval_steps": 24, "learning_rate": 1e-2}
    cfg = SFTConfig(**fast, max_train_examples=8, warmup_ratio=0,   # 8 rows, 6 passes
                    precision="bf16", gradient_checkpointing=True)   # what a GPU runs by default
    device = Device.detect(cfg)
    assert device.dtype is torch.bfloat16 and device.checkpointing
    result = train_sft(workspace, "unified", cfg, workspace.model_config())
    manifest = json.loads((result.path / "manifest.json").read_text())
    assert manifest["precision"] == "bfloat16" and manifest["config"]["precision"] == "bf16"
    losses = _losses(Path(manifest["log_dir"]))
    assert len(losses) == 24 and all(math.isfinite(x) for x in losses), losses
    assert sum(losses[-3:]) < 0.8 * sum(losses[:3]), f"the loss does not fall: {losses}"
    assert math.isfinite(result.metrics["eval_loss"])
    from safetensors.torch import load_file

    weights = load_file(result.path / "adapter_model.safetensors")
    assert {v.dtype for v in weights.values()} == {torch.float32}, "the LoRA weights stay float32"
    assert any(v.abs().sum() > 0 for k, v in weights.items() if "lora_B" in k), "B starts at zero: it trained"


def test_the_completion_loss_runs_a_bf16_head_on_the_float32_states_accelerate_returns(tiny_base: Path) -> None:
    """Under mixed precision accelerate converts a model's outputs to float32, while the LM head stays bf16:
    the loss must run the head in its own dtype (this raised `mat1 and mat2 ... float != BFloat16` on a GPU)
    and still equal the model's own full-sequence loss to bf16's precision."""
    tok = AutoTokenizer.from_pretrained(tiny_base)
    model = AutoModelForCausalLM.from_pretrained(tiny_base, dtype=torch.bfloat16)
    feats = [encode_example(tok, ChatExample(SYSTEM, q, a), 128)
             for q, a in [("hi", "Hello! How can I help?"), ("What is DNS?", "It maps names to addresses.")]]
    full = model(**CompletionCollator(tok.pad_token_id)(feats)).loss.float()
    batch = CompletionCollator(tok.pad_token_id, head_at_labels=True)(feats)
    labels = batch.pop("labels")
    out = model(**batch)
    out.hidden_states = tuple(h.float() for h in out.hidden_states)   # what accelerate's convert_outputs_to_fp32 does
    loss = completion_loss(model.get_output_embeddings())(out, labels)
    assert loss.dtype is torch.float32 and math.isfinite(loss.item())
    assert loss.item() == pytest.approx(full.item(), rel=2e-2)
    loss.backward()
    assert model.model.layers[0].mlp.up_proj.weight.grad is not None


def _bf16_engine(ws: Workspace):
    from pz2.runtime.engine import build_engine

    cfg = ws.model_config({"runtime.engine.backend": "transformers", "runtime.engine.device": "cpu",
                           "runtime.engine.dtype": "bfloat16"})
    return build_engine(cfg, ws.unified_model / "adapter")


def test_the_transformers_engine_answers_in_bfloat16_on_the_cpu(hybrid: Workspace, tiny_base: Path) -> None:
    engine = _bf16_engine(hybrid)
    base_weights = {p.dtype for n, p in engine.model.named_parameters() if "lora_" not in n}
    assert base_weights == {torch.bfloat16}
    seen: list[torch.dtype] = []
    layer = engine.model.get_base_model().model.layers[0]
    hook = layer.register_forward_hook(lambda module, args, output: seen.append(
        (output[0] if isinstance(output, tuple) else output).dtype))
    try:
        answer = engine.generate("How do I install Python packages?", engine.unified)
        engine.load("qna", hybrid.specialist("qna"))
        expert = engine.generate("What is entropy?", "qna")
    finally:
        hook.remove()
    assert seen and set(seen) == {torch.bfloat16}, "the forward pass computes in bfloat16"
    for generation in (answer, expert):
        assert generation.token_ids and all(math.isfinite(x) for x in generation.logprobs)
    engine.load("full", tiny_base)    # a full-model specialist joins the base's device and dtype
    assert {p.dtype for p in engine.full["full"].parameters()} == {torch.bfloat16}
    assert engine.generate("hello", "full").token_ids


def test_eval_generation_runs_in_the_dtype_it_is_given(hybrid: Workspace) -> None:
    from typer.testing import CliRunner

    from pz2.cli import app

    out_dir = hybrid.root / "eval-bf16"
    result = CliRunner().invoke(app, ["--workspace", str(hybrid.root), "eval", "generation", "--model",
                                      str(hybrid.unified_model), "--limit", "3", "--max-new-tokens", "6",
                                      "--device", "cpu", "--dtype", "bfloat16", "--output", str(out_dir)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["rows"] == 3 and 0 <= metrics["rouge_l"] <= 1


def test_the_placement_defaults_fit_the_machine() -> None:
    placement = Placement.of(ModelConfig().runtime.engine)
    if torch.cuda.is_available():
        assert placement.device.type == "cuda" and placement.dtype in (torch.bfloat16, torch.float16)
    else:
        assert placement == Placement(torch.device("cpu"), torch.float32)
    assert Placement.of(ModelConfig(runtime={"engine": {"device": "cpu", "dtype": "bfloat16"}}).runtime.engine) == \
        Placement(torch.device("cpu"), torch.bfloat16)
    assert training_dtype("auto", cpu=True) is torch.float32 and training_dtype("bf16", cpu=True) is torch.bfloat16


@pytest.mark.parametrize(("key", "value", "message"), [
    ("device", "gpu", "runtime.engine.device"),
    ("device", "cuda:x", "runtime.engine.device"),
    ("dtype", "half", "runtime.engine.dtype"),
])
def test_a_bad_device_or_dtype_in_the_config_is_one_line(workspace: Workspace, key: str, value: str,
                                                          message: str) -> None:
    path = workspace.configs / "model_config.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg["runtime"]["engine"][key] = value
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match=message) as e:
        workspace.model_config()
    assert "\n" not in str(e.value)


def test_a_bad_precision_is_one_line(cli) -> None:
    result = cli("train", "unified", "--precision", "fp8")
    assert result.exit_code == 1
    assert "`sft.precision`" in result.output and "command-line override" in result.output
    assert "Traceback" not in result.output


@NO_GPU
def test_a_gpu_asked_for_on_a_machine_without_one_is_refused_in_one_line(hybrid: Workspace) -> None:
    with pytest.raises(ConfigError, match="runtime.engine.device: cuda:1`: torch .* sees no CUDA GPU"):
        resolve_device("cuda:1")
    with pytest.raises(ConfigError, match="sft.precision: fp16` needs a CUDA GPU"):
        Device.detect(SFTConfig(precision="fp16"))
    from typer.testing import CliRunner

    from pz2.cli import app

    result = CliRunner().invoke(app, ["--workspace", str(hybrid.root), "eval", "generation", "--limit", "1",
                                      "--device", "cuda"])
    assert result.exit_code == 1 and "sees no CUDA GPU" in result.output
    assert "Traceback" not in result.output


def test_training_arguments_use_the_names_of_the_installed_transformers(tmp_path: Path) -> None:
    """Checkpointing and length-grouped batches are asked for under whichever names this transformers has
    (the lowest declared release and the newest differ; `make test` runs both)."""
    from pz2.training.sft import _arguments

    args = _arguments(SFTConfig(), tmp_path, Device(cpu=True, dtype=torch.bfloat16, checkpointing=True))
    checkpointing = getattr(args, "activation_checkpointing", None) or args.gradient_checkpointing
    sampler = getattr(args, "train_sampling_strategy", None) or ("group_by_length" if args.group_by_length else "random")
    assert checkpointing is True and sampler == "group_by_length" and args.bf16 and not args.fp16
    plain = _arguments(SFTConfig(group_by_length=False), tmp_path, Device(cpu=True, dtype=torch.float32, checkpointing=False))
    assert not (getattr(plain, "activation_checkpointing", None) or plain.gradient_checkpointing)
    assert getattr(plain, "train_sampling_strategy", "random") == "random" and not getattr(plain, "group_by_length", False)
