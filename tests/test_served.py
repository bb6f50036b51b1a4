"""The served models: what llama.cpp reads is what training saw, the unified model merged in, and
adapters that belong to another model are refused (stale specialists included)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import SFT_FAST, copy_workspace, random_adapter
from typer.testing import CliRunner

from pz2.cli import app
from pz2.config import ModelConfig
from pz2.errors import ModelError
from pz2.models.gguf_export import TensorNames, architecture, permute_rows
from pz2.models.prepare import served_base
from pz2.models.unified import served_unified, unified_id
from pz2.runtime.assistant import Assistant
from pz2.runtime.engine import build_engine
from pz2.workspace import Workspace


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.float32).tobytes()).hexdigest()


def served_equals_trained(folder: Path) -> dict[str, str]:
    """Every tensor of folder/model.gguf, dequantized as llama.cpp reads it, hashed against the same
    tensor of folder/model.safetensors (what training and transformers load); returns the GGUF types."""
    import gguf
    from safetensors.numpy import load_file

    config = json.loads((folder / "config.json").read_text())
    heads = {"attn_q": config["num_attention_heads"], "attn_k": config["num_key_value_heads"]}
    trained = load_file(folder / "model.safetensors")
    names = TensorNames(architecture(config), config["num_hidden_layers"])
    by_gguf = {names(name): name for name in trained}
    reader = gguf.GGUFReader(folder / "model.gguf")
    types = {}
    for t in reader.tensors:
        values = gguf.quants.dequantize(t.data, t.tensor_type).reshape(trained[by_gguf[t.name]].shape)
        expected = trained[by_gguf[t.name]]
        n_head = next((n for key, n in heads.items() if f".{key}." in t.name), None)
        if n_head:
            expected = permute_rows(expected, n_head)
        assert _digest(values) == _digest(expected), t.name
        types[t.name] = t.tensor_type.name
    assert len(types) == len(trained)
    return types


@pytest.mark.slow
def test_the_served_embedded_base_is_the_trained_base_tensor_for_tensor(model_cache: Path, tmp_path: Path) -> None:
    cfg = ModelConfig(cache_dir=model_cache)
    base = served_base(cfg)
    types = served_equals_trained(base.path)
    assert types["blk.0.ffn_up.weight"] == "Q4_1" and types["token_embd.weight"] == "Q8_0"
    assert base.identity.format == "q4_1"
    assert base.identity.sha256 == hashlib.sha256((base.path / "model.gguf").read_bytes()).hexdigest()
    import gguf

    from pz2.models.embedded import BASE

    shipped = {t.name: bytes(t.data) for t in gguf.GGUFReader(BASE.path()).tensors}
    served = {t.name: bytes(t.data) for t in gguf.GGUFReader(base.path / "model.gguf").tensors}
    assert served == shipped, "written in its own format, the shipped base is served byte for byte"

    from pz2.fileio import sha256_file
    from pz2.models.loading import check_trained_on

    assert base.identity.same_values_as == sha256_file(BASE.path())
    earlier = tmp_path / "earlier-adapter"   # what pz2 recorded before the served base: the shipped file's hash
    earlier.mkdir()
    (earlier / "manifest.json").write_text(json.dumps({"kind": "qna", "base_model": {
        "id": f"embedded:{BASE.name}", "sha256": sha256_file(BASE.path())}}))
    check_trained_on(earlier, base.identity)
    (earlier / "manifest.json").write_text(json.dumps({"kind": "qna", "base_model": {"id": "other", "sha256": "0" * 64}}))
    with pytest.raises(ModelError, match="trained on other"):
        check_trained_on(earlier, base.identity)


@pytest.fixture
def tiny_q4(tiny_base: Path, tiny_gguf: Path, tmp_path: Path) -> ModelConfig:
    return ModelConfig(base_model=str(tiny_base), cache_dir=tmp_path / "cache", weights_format="q4_0",
                       runtime={"engine": {"gguf_model": str(tiny_gguf), "threads": 1}})


def test_the_merged_unified_model_is_served_as_written_and_cached_by_content(tiny_q4: ModelConfig, tiny_base: Path,
                                                                            tmp_path: Path) -> None:
    adapter = random_adapter(tiny_base, tmp_path / "unified", seed=4)
    unified = served_unified(tiny_q4, adapter)
    types = served_equals_trained(unified.path)
    assert types["blk.1.attn_q.weight"] == "Q4_0"
    assert unified.identity.id == unified_id(adapter) and unified.identity.base.id == str(tiny_base)
    stamp = (unified.path / "model.gguf").stat().st_mtime_ns
    assert served_unified(tiny_q4, adapter).path == unified.path
    assert (unified.path / "model.gguf").stat().st_mtime_ns == stamp, "a second call reuses the merge"
    other = served_unified(tiny_q4, random_adapter(tiny_base, tmp_path / "retrained", seed=5))
    assert other.path != unified.path and other.identity.sha256 != unified.identity.sha256


@pytest.fixture(scope="module")
def two_stage_ws(hybrid_ws: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """The hybrid workspace with `merge_unified` on (a float base: the merge is exact) and its specialists
    retrained the two-stage way, on the unified model merged into the base."""
    from pz2.config import SFTConfig
    from pz2.training.sft import train_sft

    ws = copy_workspace(hybrid_ws, tmp_path_factory.mktemp("two-stage"))
    config = ws.configs / "model_config.yaml"
    config.write_text(yaml.safe_dump(yaml.safe_load(config.read_text()) | {"merge_unified": True}, allow_unicode=True))
    for kind in ("qna", "technical"):
        train_sft(ws, kind, SFTConfig(**SFT_FAST), ws.model_config())
    return ws


@pytest.fixture
def two_stage(two_stage_ws: Workspace, tmp_path: Path) -> Workspace:
    return copy_workspace(two_stage_ws, tmp_path)


def test_by_default_the_unified_adapter_rides_on_the_base_and_the_specialists_train_on_the_base(
        hybrid_ws: Workspace) -> None:
    engine = build_engine(hybrid_ws.model_config(), hybrid_ws.unified_model / "adapter")
    assert engine.unified == "unified" and engine.loaded() == ["unified"]
    assert engine.served.id == hybrid_ws.model_config().base_model
    manifest = json.loads((hybrid_ws.specialist("qna") / "manifest.json").read_text())
    assert manifest["base_model"]["sha256"] == engine.served.sha256
    engine.load("qna", hybrid_ws.specialist("qna"))


def test_the_merged_model_answers_as_base_plus_adapter(two_stage_ws: Workspace) -> None:
    """On a float base the merge is exact up to rounding: the merged model (adapter None) answers as the
    base with the unified adapter did, in both engines."""
    from pz2.runtime.engine_transformers import TransformersEngine

    cfg = two_stage_ws.model_config()
    unified = two_stage_ws.unified_model / "adapter"
    reference = TransformersEngine.from_config(cfg, served_base(cfg))
    reference.load("unified", unified)
    expected = [reference.generate(q, "unified").token_ids for q in ("What is recursion?", "I feel sad today")]
    for backend in ("llamacpp", "transformers"):
        engine = build_engine(two_stage_ws.model_config({"runtime.engine.backend": backend}), unified)
        assert engine.served.id == unified_id(unified)
        assert [engine.generate(q, None).token_ids for q in ("What is recursion?", "I feel sad today")] == expected


def test_both_engines_give_the_same_greedy_answers_on_the_merged_float_model(two_stage_ws: Workspace) -> None:
    unified = two_stage_ws.unified_model / "adapter"
    answers = {}
    for backend in ("llamacpp", "transformers"):
        engine = build_engine(two_stage_ws.model_config({"runtime.engine.backend": backend}), unified)
        engine.load("qna", two_stage_ws.specialist("qna"))
        answers[backend] = [engine.generate("What is entropy?", adapter).token_ids for adapter in (None, "qna")]
    assert answers["llamacpp"] == answers["transformers"]
    assert answers["llamacpp"][0] != answers["llamacpp"][1], "the specialist changes the answer"


def test_a_specialist_is_trained_on_the_unified_model_and_refused_on_another(two_stage_ws: Workspace) -> None:
    manifest = json.loads((two_stage_ws.specialist("qna") / "manifest.json").read_text())
    unified = two_stage_ws.unified_model / "adapter"
    assert manifest["base_model"]["id"] == unified_id(unified)
    plain = build_engine(two_stage_ws.model_config())   # the base alone, as before the unified model
    with pytest.raises(ModelError, match=r"trained on unified:[0-9a-f]{16} .* but the engine serves .*"
                                         r"retrain it \(`pz2 train specialist --type qna`\)"):
        plain.load("qna", two_stage_ws.specialist("qna"))
    merged = build_engine(two_stage_ws.model_config(), unified)
    with pytest.raises(ModelError, match=r"retrain it \(`pz2 train unified`\)"):
        merged.load("unified", unified)   # the unified adapter belongs to the base, not to itself merged
    assert merged.loaded() == [] and plain.loaded() == []


def test_retraining_the_unified_model_makes_the_specialists_stale(two_stage: Workspace, tiny_base: Path,
                                                                 tmp_path: Path) -> None:
    before = json.loads(CliRunner().invoke(app, ["--workspace", str(two_stage.root), "status", "--json"]).stdout)
    assert not [e for e in before if "stale" in e["metrics"]]
    retrained = random_adapter(tiny_base, tmp_path / "retrained", seed=9)
    for name in ("adapter_config.json", "adapter_model.safetensors"):   # the manifest stays: trained on the base
        shutil.copy(retrained / name, two_stage.unified_model / "adapter" / name)

    after = json.loads(CliRunner().invoke(app, ["--workspace", str(two_stage.root), "status", "--json"]).stdout)
    stale = {e["name"]: e["metrics"]["stale"] for e in after if "stale" in e["metrics"]}
    assert set(stale) == {"qna_specialist", "technical_specialist"}
    assert "retrain with `pz2 train specialist --type qna`" in stale["qna_specialist"]

    a = Assistant.from_config(two_stage, two_stage.model_config(), log=False)
    try:
        turn = a.ask("What is entropy? expert mode", expert=True)
    finally:
        a.close()
    assert (turn.route, turn.reason) == ("unified", "fallback")
    assert "stale: the unified model was retrained since" in turn.specialist_state


def test_eval_generation_measures_the_decoder_pz2_serves(hybrid: Workspace) -> None:
    """`eval generation` answers through the served engine (llama.cpp, the no-repeat rule on), so its
    ROUGE-L is the served model's: its predictions are the served engine's answers, token for token."""
    from pz2.data.loading import reference_pairs

    out = hybrid.root / "eval-served"
    result = CliRunner().invoke(app, ["--workspace", str(hybrid.root), "eval", "generation", "--model",
                                      str(hybrid.unified_model), "--limit", "3", "--max-new-tokens", "12",
                                      "--output", str(out)])
    assert result.exit_code == 0, result.output
    cfg = hybrid.model_config()
    assert cfg.runtime.engine.no_repeat_ngram_size > 0
    assert json.loads((out / "metrics.json").read_text())["engine"] == cfg.runtime.engine.backend == "llamacpp"
    predictions = [json.loads(line)["prediction"] for line in (out / "predictions.jsonl").read_text().splitlines()]
    engine = build_engine(cfg, hybrid.unified_model / "adapter")
    pairs = reference_pairs(hybrid.datasets / "unified_test.jsonl", cfg.system_prompt, 3)
    assert predictions == [engine.stream(u, engine.unified, 12, system=s).text for s, u, _, _ in pairs]
