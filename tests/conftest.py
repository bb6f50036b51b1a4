"""Shared fixtures: a throw-away workspace per test, one prepared base per session."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pz2.cli import app
from pz2.config import DataConfig, ModelConfig
from pz2.data.generate import generate
from pz2.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]

# Fixtures that train models, convert the real base or build a knowledge base: a test that uses one, directly
# or through another fixture, is an integration test, as is one marked `slow` or `integration` itself (a
# subprocess that trains, a server, a browser). The rest, `pytest -m "not integration"`, is the fast tier.
TRAINS_OR_BUILDS = {"hybrid_ws", "sft_ws", "confident_ws", "serve_ws", "kb_ws", "two_stage_ws", "family_ws",
                    "seed_layout", "finetuned", "setfit", "banks_kb", "browser", "learnable_base"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if TRAINS_OR_BUILDS & set(getattr(item, "fixturenames", ())) or item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the whole session, so the base is converted at most once per run."""
    return tmp_path_factory.mktemp("pz2-cache")


@pytest.fixture
def workspace(tmp_path: Path, model_cache: Path) -> Workspace:
    """A copy of the repository's configs in a fresh workspace whose model cache is the session's."""
    root = tmp_path / "finetuning"
    shutil.copytree(REPO / "finetuning" / "configs", root / "configs")
    model_cfg = yaml.safe_load((root / "configs" / "model_config.yaml").read_text())
    model_cfg["cache_dir"] = str(model_cache)
    (root / "configs" / "model_config.yaml").write_text(yaml.safe_dump(model_cfg))
    return Workspace(root)


@pytest.fixture
def small_data(workspace: Workspace) -> Path:
    """A small but complete generated dataset (all nine files) in the workspace."""
    generate(DataConfig(per_category=60), ModelConfig().system_prompt, workspace.datasets)
    return workspace.datasets


@pytest.fixture
def cli(workspace: Workspace):
    """Invoke `pz2 --workspace <tmp> ...` in process."""
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, ["--workspace", str(workspace.root), *args], catch_exceptions=False)

    return invoke


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Path:
    """A randomly initialised two-layer Llama with the embedded base's tokenizer and chat template.

    Same tokenizer and architecture family as the real base, a thousandth of its size: training
    steps take milliseconds, so tests exercise the real transformers/PEFT code paths quickly.
    """
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from pz2.models.prepare import embedded_tokenizer_dir

    tokenizer = AutoTokenizer.from_pretrained(embedded_tokenizer_dir(ModelConfig(cache_dir=model_cache)))
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    path = tmp_path_factory.mktemp("tiny-base")
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_gguf(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny base as an exact float32 GGUF, for the llama.cpp engine."""
    from pz2.models.embedded import BASE
    from pz2.models.gguf_export import write_model_gguf

    out = tmp_path_factory.mktemp("tiny-gguf") / "tiny-f32.gguf"
    write_model_gguf(tiny_base, out, BASE.path())
    return out


CLASSIFIER_FAST = {"epochs": 2, "batch_size": 16, "eval_every": 5, "patience": 2, "max_length": 32}
SFT_FAST = {"max_steps": 4, "save_steps": 4, "eval_steps": 4, "batch_size": 2, "max_eval_examples": 2,
            "logging_steps": 1, "max_length": 96, "learning_rate": 5e-3}


@pytest.fixture(scope="session")
def hybrid_ws(tmp_path_factory: pytest.TempPathFactory, model_cache: Path, tiny_base: Path, tiny_gguf: Path) -> Workspace:
    """A workspace with everything the assistant runs on, trained for real at tiny size: generated data,
    the classifier (embedded encoder, a few steps), and unified/qna/technical LoRA adapters on the tiny base,
    served by llama.cpp from the tiny GGUF. Tests copy it (`hybrid`) before changing anything."""
    from pz2.config import ClassifierConfig, SFTConfig
    from pz2.training.classifier import train_classifier
    from pz2.training.sft import train_sft

    root = tmp_path_factory.mktemp("hybrid") / "finetuning"
    shutil.copytree(REPO / "finetuning" / "configs", root / "configs")
    path = root / "configs" / "model_config.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg.update(cache_dir=str(model_cache), base_model=str(tiny_base), weights_format="f32")
    cfg["runtime"]["engine"].update(gguf_model=str(tiny_gguf), max_new_tokens=12, specialist_max_new_tokens=24, threads=2,
                                    flash_attention=False)   # float attention: both engines agree token for token
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    ws = Workspace(root)
    generate(DataConfig(per_category=70), ModelConfig().system_prompt, ws.datasets)
    train_classifier(ws, ClassifierConfig(method="finetune", include_real=False, **CLASSIFIER_FAST), ModelConfig(),
                     ws.classifier)
    model_cfg = ws.model_config()
    for kind in ("unified", "qna", "technical"):
        train_sft(ws, kind, SFTConfig(**SFT_FAST), model_cfg)
    return ws


def copy_workspace(ws: Workspace, parent: Path) -> Workspace:
    """A copy of `ws` under `parent`, without its checkpoints and training logs."""
    root = parent / "finetuning"
    shutil.copytree(ws.root, root, ignore=shutil.ignore_patterns("checkpoints", "training_logs"))
    return Workspace(root)


@pytest.fixture
def hybrid(hybrid_ws: Workspace, tmp_path: Path) -> Workspace:
    """A private copy of the trained hybrid workspace."""
    return copy_workspace(hybrid_ws, tmp_path)


def random_adapter(base: Path, out: Path, seed: int) -> Path:
    """A LoRA adapter with random A and B (PEFT's default B = 0 leaves the base unchanged): each seed
    answers differently, which is what adapter mix-ups are detected by."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    model = get_peft_model(LlamaForCausalLM.from_pretrained(base),
                           LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False))
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def random_adapters(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    return {name: random_adapter(tiny_base, root / name, seed) for name, seed in (("a", 1), ("b", 2), ("c", 3))}


@pytest.fixture(scope="session")
def confident_ws(hybrid_ws: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """The hybrid workspace plus a confidence model fitted on real generation features of the tiny
    unified model. A tiny model writes no good answer, so the labels follow a stated premise, the
    one the real models show (benchmarks/sft_quality.py: the unified model is weak on technical and
    QnA questions, fine on chat): answers to general questions are good, to the others not, with
    10% of the labels flipped."""
    import numpy as np

    from pz2.data.loading import reference_pairs
    from pz2.models.sentence import SentenceEncoder
    from pz2.runtime.classifier import ConversationClassifier
    from pz2.runtime.confidence import CONFIDENCE_FILE, FEATURES, ConfidenceModel
    from pz2.runtime.confidence_fit import GENERATED, Question, collect
    from pz2.runtime.engine import build_engine

    root = tmp_path_factory.mktemp("confident") / "finetuning"
    shutil.copytree(hybrid_ws.root, root, ignore=shutil.ignore_patterns("checkpoints", "training_logs"))
    ws = Workspace(root)
    cfg = ws.model_config()
    engine = build_engine(cfg, ws.unified_model / "adapter")
    classifier = ConversationClassifier.load(ws.classifier)
    questions = [Question(GENERATED, split, user, reference) for split in ("validation", "test")
                 for _, user, reference, _ in reference_pairs(ws.datasets / f"unified_{split}.jsonl", cfg.system_prompt, None)]
    good = {"short_answer_words": 5, "semscore": 0.6}
    max_new = cfg.runtime.engine.max_new_tokens
    x, _, rows = collect(engine, classifier, None, SentenceEncoder.load(cfg), questions, good, cfg.runtime, False)
    rng = np.random.default_rng(0)
    y = np.array([float((r["category"] == "general") != (rng.random() < 0.1)) for r in rows])
    eligible = np.array([r["category"] != "general" for r in rows])
    ConfidenceModel.fit(x, y, FEATURES, max_new, good, eligible)[0].save(ws.unified_model / CONFIDENCE_FILE)
    return ws


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def live_server(api) -> Iterator[str]:
    """A real uvicorn server for `api` on 127.0.0.1 (a free port) in a thread; yields its base URL."""
    import threading

    import uvicorn

    server = uvicorn.Server(uvicorn.Config(api, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def wait_healthy(url: str, timeout: float = 120) -> None:
    """Until /health says ok: the assistant loads after the server starts."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            r = httpx.get(f"{url}/health", timeout=5)
        except httpx.TransportError:
            r = None
        if r is not None and r.status_code == 200:
            return
        assert r is None or r.json()["status"] != "failed", r.text
        assert time.monotonic() < deadline, f"{url} not healthy after {timeout}s"
        time.sleep(0.1)


@pytest.fixture(scope="session")
def serve_ws(hybrid_ws: Workspace, random_adapters: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """The hybrid workspace with random adapters as the unified model and the specialists, so that each
    model answers differently and an adapter mix-up shows in the text."""
    root = tmp_path_factory.mktemp("serve") / "finetuning"
    shutil.copytree(hybrid_ws.root, root, ignore=shutil.ignore_patterns("checkpoints", "training_logs"))
    ws = Workspace(root)
    for name, target in (("a", ws.unified_model / "adapter"), ("b", ws.specialist("qna")),
                         ("c", ws.specialist("technical"))):
        shutil.rmtree(target)
        shutil.copytree(random_adapters[name], target)
    return ws


@pytest.fixture(scope="session")
def banks_kb(tmp_path_factory: pytest.TempPathFactory):
    """A knowledge base of the topic banks and the packaged corpora, with its encoder: (index, encoder)."""
    from pz2.config import KnowledgeConfig, TrainingConfig
    from pz2.knowledge.build import build_knowledge
    from pz2.knowledge.index import KnowledgeIndex
    from pz2.models.sentence import SentenceEncoder

    encoder = SentenceEncoder.load(ModelConfig(cache_dir=tmp_path_factory.mktemp("cache")))
    folder = tmp_path_factory.mktemp("kb") / "knowledge"
    build_knowledge(folder, KnowledgeConfig(collections=["banks", "corpora"]), TrainingConfig(), encoder)
    return KnowledgeIndex.load(folder), encoder
