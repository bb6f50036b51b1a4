"""LoRA fine-tuning of the unified model and the specialists, on a tiny random Llama (seconds)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer

from pz2.config import EngineConfig, ModelConfig
from pz2.fileio import sha256_file
from pz2.models.chat import IGNORE_INDEX, ChatExample, encode_example, prompt_ids
from pz2.runtime.engine_transformers import TransformersEngine
from pz2.training.sft_data import CompletionCollator, pack

SYSTEM = ModelConfig().system_prompt
TINY_PROFILE = {"max_steps": 30, "save_steps": 5, "eval_steps": 5, "batch_size": 2, "max_eval_examples": 4,
                "logging_steps": 1, "max_length": 96, "learning_rate": 5e-3}


@pytest.fixture
def sft_ws(workspace, tiny_base: Path):
    """The test workspace, its base set to the tiny model, with small data and a `tiny` profile."""
    from pz2.config import DataConfig
    from pz2.data.generate import generate

    model_cfg = workspace.configs / "model_config.yaml"
    cfg = yaml.safe_load(model_cfg.read_text())
    cfg["base_model"] = str(tiny_base)
    model_cfg.write_text(yaml.safe_dump(cfg))
    training = workspace.configs / "training_config.yaml"
    cfg = yaml.safe_load(training.read_text())
    cfg["profiles"]["tiny"] = TINY_PROFILE
    training.write_text(yaml.safe_dump(cfg))
    generate(DataConfig(per_category=20), SYSTEM, workspace.datasets)
    return workspace


def _pz2(ws, *args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, "-m", "pz2", "--workspace", str(ws.root), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def _wait_for(path_glob: Path, pattern: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not any((p / "trainer_state.json").exists() for p in path_glob.glob(pattern)):
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, f"no {pattern} after {timeout}s"
        time.sleep(0.2)


def test_prompt_tokens_are_masked_and_the_answer_ends_the_turn(tiny_base: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_base)
    ex = ChatExample(SYSTEM, "What is DNS?", "DNS translates names into IP addresses.")
    f = encode_example(tok, ex, max_length=512)
    prompt = prompt_ids(tok, SYSTEM, "What is DNS?")
    assert f["input_ids"][: len(prompt)] == prompt
    assert f["labels"][: len(prompt)] == [IGNORE_INDEX] * len(prompt)
    answer = f["labels"][len(prompt):]
    assert IGNORE_INDEX not in answer and answer == f["input_ids"][len(prompt):]
    assert tok.decode(answer) == "DNS translates names into IP addresses.<|im_end|>"
    short = encode_example(tok, ex, max_length=len(prompt) + 3)
    assert len(short["input_ids"]) == len(prompt) + 3
    assert encode_example(tok, ex, max_length=len(prompt)) is None


def test_training_and_inference_share_one_chat_template(tiny_base: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_base)
    model = AutoModelForCausalLM.from_pretrained(tiny_base).eval()
    ex = ChatExample(SYSTEM, "How do I undo the last commit in git?", "x")
    train_prompt = encode_example(tok, ex, 512)["input_ids"][: len(prompt_ids(tok, ex.system, ex.user))]
    ids = torch.tensor([train_prompt])
    with torch.inference_mode():
        manual = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=8,
                                min_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
    expected = tok.decode(manual[0, ids.shape[1]:], skip_special_tokens=True).strip()
    engine = TransformersEngine(model, tok, ex.system, EngineConfig(max_new_tokens=8, no_repeat_ngram_size=0))
    assert engine.generate(ex.user).text == expected, "the engine prompts as training did"
    assert "<|im_start|>system\n" + SYSTEM in tok.decode(train_prompt)


def test_packing_fills_blocks_without_losing_tokens() -> None:
    feats = [{"input_ids": list(range(n)), "labels": [IGNORE_INDEX] * 2 + list(range(2, n))} for n in (5, 7, 9, 3)]
    blocks = pack(feats, max_length=8)
    assert [len(b["input_ids"]) for b in blocks] == [8, 8, 8]
    assert sum((b["input_ids"] for b in blocks), []) == sum((f["input_ids"] for f in feats), [])
    assert sum((b["labels"] for b in blocks), []) == sum((f["labels"] for f in feats), [])
    batch = CompletionCollator(pad_token_id=0)(feats[:2])
    assert batch["input_ids"].shape == (2, 7)
    assert batch["labels"][0, 5:].tolist() == [IGNORE_INDEX] * 2 and batch["attention_mask"][0].sum() == 5


def test_unified_adapter_saves_reloads_changes_the_base_and_has_a_full_manifest(sft_ws, cli, tiny_base) -> None:
    from peft import PeftModel

    result = cli("train", "unified", "--profile", "tiny", "--max-steps", "10")
    assert result.exit_code == 0, result.output
    adapter = sft_ws.models / "unified_model" / "adapter"
    assert (adapter / "adapter_model.safetensors").exists() and (adapter / "adapter_config.json").exists()

    manifest = json.loads((adapter / "manifest.json").read_text())
    assert manifest["kind"] == "unified" and manifest["profile"] == "tiny"
    assert manifest["base_model"]["id"] == str(tiny_base)
    assert manifest["base_model"]["sha256"] == sha256_file(tiny_base / "model.safetensors")
    for path, record in manifest["data"].items():
        assert sha256_file(Path(path)) == record["sha256"]
    assert {Path(p).name for p in manifest["data"]} == {"unified_train.jsonl", "unified_validation.jsonl"}
    assert manifest["config"]["max_steps"] == 10 and manifest["config"]["lora"]["r"] == 16
    assert manifest["metrics"]["global_step"] == 10
    for key in ("train_loss", "eval_loss", "train_tokens_per_s"):
        assert manifest["metrics"][key] > 0
    assert manifest["wall_time_s"] > 0 and manifest["trainable_parameters"] > 0
    assert list((sft_ws.training_logs).glob("unified-*/events.out.tfevents.*")), "TensorBoard logs"
    # validation every 5 steps: the last step's pass is the adapter's, not repeated after training
    log = [json.loads(line) for line in next(sft_ws.training_logs.glob("unified-*/log.jsonl")).read_text().splitlines()]
    evals = [e for e in log if "eval_loss" in e]
    assert [e["step"] for e in evals] == [5, 10] and manifest["metrics"]["eval_loss"] == evals[-1]["eval_loss"]

    tok = AutoTokenizer.from_pretrained(adapter)
    ids = torch.tensor([prompt_ids(tok, SYSTEM, "What is DNS?")])
    base = AutoModelForCausalLM.from_pretrained(tiny_base).eval()
    with torch.inference_mode():
        before = base(input_ids=ids).logits
        tuned = PeftModel.from_pretrained(base, adapter).eval()
        after = tuned(input_ids=ids).logits
        again = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_base), adapter).eval()(input_ids=ids).logits
    assert (after - before).abs().max() > 1e-3, "the adapter must change the base's output"
    assert torch.allclose(after, again), "a reloaded adapter gives the same output"


def test_specialist_trains_on_its_dialogue_file(sft_ws, cli) -> None:
    result = cli("train", "specialist", "--type", "technical", "--profile", "tiny", "--max-steps", "3")
    assert result.exit_code == 0, result.output
    manifest = json.loads((sft_ws.models / "technical_specialist" / "manifest.json").read_text())
    assert {Path(p).name for p in manifest["data"]} == {"dialogue_technical_train.jsonl",
                                                        "dialogue_technical_validation.jsonl"}


def test_daily_chat_is_refused_with_the_seeds_reason(sft_ws, cli) -> None:
    result = cli("train", "specialist", "--type", "daily_chat")
    assert result.exit_code == 2
    assert "handled by the unified model" in result.output


def test_bad_config_value_stops_before_training(sft_ws, cli) -> None:
    path = sft_ws.configs / "training_config.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg["sft"]["lora"]["r"] = 0
    path.write_text(yaml.safe_dump(cfg))
    result = cli("train", "unified", "--profile", "tiny")
    assert result.exit_code == 1
    assert "`sft.lora.r`: Input should be greater than or equal to 1" in result.output
    assert not sft_ws.checkpoints.exists()


def test_missing_or_invalid_data_stops_with_the_validators_message(sft_ws, cli) -> None:
    (sft_ws.datasets / "dialogue_qna_validation.jsonl").unlink()
    result = cli("train", "specialist", "--type", "qna", "--profile", "tiny")
    assert result.exit_code == 1 and "dialogue_qna_validation.jsonl: file not found" in result.output
    path = sft_ws.datasets / "unified_train.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace('"category": "', '"category": "x')
    path.write_text("\n".join(lines) + "\n")
    result = cli("train", "unified", "--profile", "tiny")
    assert result.exit_code == 1 and f"{path}:3: category" in result.output
    assert not sft_ws.checkpoints.exists()


def test_killed_training_resumes_and_the_final_adapter_generates(sft_ws, tiny_base) -> None:
    from peft import PeftModel

    run = sft_ws.checkpoints / "unified"
    proc = _pz2(sft_ws, "train", "unified", "--profile", "tiny", "--max-steps", "20")
    try:
        _wait_for(run, "run-*/checkpoint-10", proc)
    finally:
        proc.kill()  # SIGKILL: no handler runs, nothing is flushed
        proc.wait()
    assert not (sft_ws.models / "unified_model" / "adapter").exists()

    resumed = _pz2(sft_ws, "train", "unified", "--profile", "tiny", "--max-steps", "20", "--resume")
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    assert "{'loss'" not in out and "\x1b[" not in out and "\r" not in out, "a log file gets lines, not a bar's dicts"
    assert "unified: step 20/20 · " in out and "eval_loss" in out and "FutureWarning" not in out, out
    adapter = sft_ws.models / "unified_model" / "adapter"
    manifest = json.loads((adapter / "manifest.json").read_text())
    assert manifest["metrics"]["resumed_from"].startswith("checkpoint-")
    assert int(manifest["metrics"]["resumed_from"].split("-")[1]) >= 10
    assert manifest["metrics"]["global_step"] == 20
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_base), adapter).eval()
    tok = AutoTokenizer.from_pretrained(adapter)
    ids = torch.tensor([prompt_ids(tok, SYSTEM, "hello")])
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=5, min_new_tokens=5,
                         do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape[1] == ids.shape[1] + 5


def test_ctrl_c_saves_a_checkpoint_first(sft_ws) -> None:
    run = sft_ws.checkpoints / "unified"
    proc = _pz2(sft_ws, "train", "unified", "--profile", "tiny", "--max-steps", "200")
    try:
        _wait_for(run, "run-*/checkpoint-5", proc)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, out
    assert "continue with the same command and --resume" in out
    last = max(int(p.name.split("-")[1]) for p in run.glob("run-1/checkpoint-*"))
    assert last > 5, "the step that was running when Ctrl-C came is checkpointed"
    state = json.loads((run / "run-1" / f"checkpoint-{last}" / "trainer_state.json").read_text())
    assert state["global_step"] == last < 200
    assert not (sft_ws.models / "unified_model" / "adapter").exists(), "an interrupted run saves no final adapter"


def test_two_process_ddp_training_writes_one_adapter_from_the_main_process(sft_ws, tiny_base) -> None:
    """Two processes on a CPU train with DDP over gloo: only the main one logs, checkpoints (in a new run
    folder, the earlier run's checkpoints kept and said so) and saves, in the same adapter format as one process. (`accelerate launch --cpu` starts
    more than one process only through MPI; `--multi_gpu` starts them with torchrun, and on a machine
    without a GPU pz2 puts them on the CPU.) In bf16 with gradient checkpointing, as on GPUs: the code
    path of a multi-GPU run but for NCCL."""
    stale = sft_ws.checkpoints / "unified" / "checkpoint-999"   # left by an earlier pz2, which had no run folders
    stale.mkdir(parents=True)
    (stale / "trainer_state.json").write_text("{}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    accelerate = Path(sys.executable).with_name("accelerate")
    training = sft_ws.configs / "training_config.yaml"
    cfg = yaml.safe_load(training.read_text())
    cfg["profiles"]["tiny-gpu-path"] = {**TINY_PROFILE, "gradient_checkpointing": True}
    training.write_text(yaml.safe_dump(cfg))
    out = subprocess.run([str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "-m", "pz2",
                          "--workspace", str(sft_ws.root), "train", "unified", "--profile", "tiny-gpu-path",
                          "--precision", "bf16", "--max-steps", "4"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    adapter = sft_ws.models / "unified_model" / "adapter"
    manifest = json.loads((adapter / "manifest.json").read_text())
    assert manifest["processes"] == 2 and manifest["metrics"]["global_step"] == 4
    assert manifest["precision"] == "bfloat16" and manifest["config"]["gradient_checkpointing"] is True
    from peft import PeftModel
    from safetensors.torch import load_file

    weights = load_file(adapter / "adapter_model.safetensors")
    assert weights and all("lora_" in k for k in weights)
    assert any(v.abs().sum() > 0 for k, v in weights.items() if "lora_B" in k), "B starts at zero: it trained"
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_base), adapter)  # the usual format
    assert stale.exists(), "a run started without --resume keeps the earlier run's checkpoints"
    assert "the earlier runs' checkpoints stay in" in " ".join((out.stdout + out.stderr).split())
    assert sorted(p.name for p in (sft_ws.checkpoints / "unified" / "run-1").iterdir()) == ["checkpoint-4", "run.json"]
    assert len(list(sft_ws.training_logs.glob("unified-*"))) == 1, "one log folder, the main process's"
    assert out.stdout.count("unified adapter saved to") == 1, out.stdout


def test_head_at_labels_loss_equals_the_full_causal_lm_loss(tiny_base: Path) -> None:
    """Computing logits only where labels are gives the model's own loss, gradients included."""
    from pz2.training.sft_data import completion_loss

    tok = AutoTokenizer.from_pretrained(tiny_base)
    model = AutoModelForCausalLM.from_pretrained(tiny_base)
    feats = [encode_example(tok, ChatExample(SYSTEM, q, a), 128)
             for q, a in [("hi", "Hello! How can I help?"), ("What is DNS?", "It maps names to addresses.")]]
    batch = CompletionCollator(tok.pad_token_id)(feats)
    full = model(**batch).loss
    full.backward()
    grad_full = model.model.layers[0].mlp.up_proj.weight.grad.clone()
    model.zero_grad()
    fast_batch = CompletionCollator(tok.pad_token_id, head_at_labels=True)(feats)
    labels = fast_batch.pop("labels")
    fast = completion_loss(model.get_output_embeddings())(model(**fast_batch), labels)
    fast.backward()
    assert fast.item() == pytest.approx(full.item(), rel=1e-5)
    assert torch.allclose(model.model.layers[0].mlp.up_proj.weight.grad, grad_full, atol=1e-6)


def test_eval_generation_export_merge_and_the_seed_evaluation_script(sft_ws, cli, tiny_base) -> None:
    assert cli("train", "unified", "--profile", "tiny", "--max-steps", "4").exit_code == 0
    model_dir = sft_ws.models / "unified_model"
    out = sft_ws.root / "eval-out"
    result = cli("eval", "generation", "--model", str(model_dir), "--limit", "4", "--max-new-tokens", "8",
                 "--output", str(out))
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["rows"] == 4 and 0 <= metrics["rouge_l"] <= 1 and 0 <= metrics["chrf"] <= 1
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 4
    assert "ROUGE-L" in (out / "report.md").read_text()

    merged = sft_ws.root / "merged"
    assert cli("export", "--merge", "--model", str(model_dir), "--output", str(merged)).exit_code == 0
    assert (merged / "model.safetensors").exists() and not (merged / "adapter_config.json").exists()
    from peft import PeftModel

    tok = AutoTokenizer.from_pretrained(merged)
    ids = torch.tensor([prompt_ids(tok, SYSTEM, "What is DNS?")])
    with torch.inference_mode():
        full = AutoModelForCausalLM.from_pretrained(merged).eval()(input_ids=ids).logits
        adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_base),
                                            model_dir / "adapter").eval()(input_ids=ids).logits
    assert torch.allclose(full, adapted, atol=1e-4), "the merged model answers as base + adapter does"

    scripts = sft_ws.root / "scripts"
    import shutil

    shutil.copytree(Path(__file__).resolve().parents[1] / "finetuning" / "scripts", scripts)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    seed_cmd = subprocess.run([sys.executable, str(scripts / "model_evaluation.py"), "--model_path", "models/unified_model",
                               "--model_type", "generation", "--limit", "2", "--max-new-tokens", "4"],
                              env=env, capture_output=True, text=True, timeout=300, cwd=sft_ws.root)
    assert seed_cmd.returncode == 0, seed_cmd.stdout + seed_cmd.stderr
    assert (model_dir / "eval" / "unified_test" / "metrics.json").exists()


def test_resume_continues_only_its_own_run_with_its_own_settings(sft_ws) -> None:
    """A run killed before its first checkpoint, resumed, must not continue an earlier run (another
    trajectory: its adapter's manifest would lie); the newest run resumes only with its own settings; a
    damaged checkpoint is passed over for the run's previous one, and with none whole the error is one line."""
    from accelerate import PartialState

    from pz2.config import SFTConfig
    from pz2.errors import ModelError, UsageError
    from pz2.training.checkpoints import resume_point
    from pz2.training.sft import train_sft

    model_cfg = sft_ws.model_config()
    first = SFTConfig(**{**TINY_PROFILE, "max_steps": 4, "save_steps": 2, "learning_rate": 2e-4})
    train_sft(sft_ws, "unified", first, model_cfg)
    root = sft_ws.checkpoints / "unified"
    assert sorted(p.name for p in (root / "run-1").glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]

    other = first.model_copy(update={"learning_rate": 1e-3})
    record = json.loads((root / "run-1" / "run.json").read_text())
    record["sft"]["learning_rate"] = 1e-3
    resume_point(root, False, record, PartialState(cpu=True))     # what a run killed before saving leaves: run-2
    resumed = train_sft(sft_ws, "unified", other, model_cfg, resume=True)
    assert resumed.checkpoint_dir.name == "run-2" and resumed.metrics["resumed_from"] is None
    manifest = json.loads((sft_ws.unified_model / "adapter" / "manifest.json").read_text())
    assert manifest["config"]["learning_rate"] == 1e-3 and manifest["metrics"]["global_step"] == 4
    assert (sft_ws.unified_model / "adapter" / "adapter_model.safetensors").read_bytes() != \
        (root / "run-1" / "checkpoint-4" / "adapter_model.safetensors").read_bytes(), "not run-1's weights"

    with pytest.raises(UsageError, match=r"run-2 was started with other settings \(sft\.learning_rate: 0\.001 -> 0\.0002\)"):
        train_sft(sft_ws, "unified", first, model_cfg, resume=True)

    optimizer = root / "run-2" / "checkpoint-4" / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[: optimizer.stat().st_size // 2])   # a kill mid-save
    longer = other.model_copy(update={"max_steps": 6})
    again = train_sft(sft_ws, "unified", longer, model_cfg, resume=True)
    assert again.metrics["resumed_from"] == "checkpoint-2" and again.metrics["global_step"] == 6
    for checkpoint in (root / "run-2").glob("checkpoint-*"):
        (checkpoint / "adapter_model.safetensors").write_bytes(b"\x08" + b"\x00" * 7 + b"{}")
    with pytest.raises(ModelError, match="no whole checkpoint in .*run-2") as e:
        train_sft(sft_ws, "unified", longer, model_cfg, resume=True)
    assert "\n" not in str(e.value)
