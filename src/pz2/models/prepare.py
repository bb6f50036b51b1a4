"""Prepare the base, once, in a cache: the GGUF that llama.cpp serves and, beside it, a Hugging
Face checkpoint of the very values that file holds, which training and the transformers engine load.

The embedded base ships as a Q4_1 GGUF. Step one dequantizes it into float32 safetensors
(transformers' GGUF loader, about 25 s; the folder then loads in about 1 s); transformers refuses
to `save_pretrained` a GGUF-loaded model ("quantized with gguf and is not serializable"), so the
weights are moved into a model built from the same config without `quantization_config`. Step two
writes those weights in `weights_format` (Q4_1: the shipped tensors again, byte for byte; Q4_0 a
second rounding, benchmarks/base_format.py) and saves what the written file dequantizes to as the
training base: the served base is the trained base, bit for bit (tests/test_served.py), and
adapters record the served file's sha256 so one trained on another base is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pz2.config import EMBEDDED, ModelConfig
from pz2.data.validate import TokenCounter
from pz2.errors import EngineUnavailable, ModelError
from pz2.fileio import atomic_directory, atomic_write_text, sha256_file
from pz2.models.artifacts import load_tokenizer, read_json
from pz2.models.embedded import BASE, ENCODER
from pz2.models.served import ModelIdentity, ServedModel, base_id, is_embedded

logger = logging.getLogger(__name__)

SOURCE_FILE = "pz2_source.json"
GGUF_FILE = "model.gguf"
WEIGHTS_FILE = "model.safetensors"


@dataclass(frozen=True)
class PreparedBase:
    path: Path
    seconds: float
    cached: bool      # True when an earlier preparation was reused
    source: dict      # what it was converted from: file, size, sha256


def _cache_root(cfg: ModelConfig) -> Path:
    return cfg.cache_dir.expanduser()


def prepared_base_dir(cfg: ModelConfig) -> Path:
    return _cache_root(cfg) / "base" / f"{BASE.name}-f32"


def _source_of(gguf: Path) -> dict:
    stat = gguf.stat()
    return {"file": gguf.name, "distribution": BASE.distribution, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _is_current(directory: Path, gguf: Path) -> dict | None:
    """The recorded source when `directory` holds a complete conversion of this very file.

    Size and mtime answer quickly; a reinstalled package (new mtime) is checked by its sha256.
    """
    try:
        recorded = json.loads((directory / SOURCE_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if not (directory / "model.safetensors").exists():
        return None
    now = _source_of(gguf)
    if recorded.get("file") != now["file"] or recorded.get("size") != now["size"]:
        return None
    if recorded.get("mtime_ns") == now["mtime_ns"] or recorded.get("sha256") == sha256_file(gguf):
        return recorded
    return None


def served_base_dir(cfg: ModelConfig) -> Path:
    return _cache_root(cfg) / "base" / f"{BASE.name}-{cfg.weights_format}"


def prepare_base(cfg: ModelConfig, force: bool = False) -> PreparedBase:
    """The embedded base as served (`weights_format`), converted unless a current conversion exists."""
    start = time.perf_counter()
    shipped = _dequantize_shipped(cfg, force)
    target = served_base_dir(cfg)
    try:
        recorded = json.loads((target / SOURCE_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        recorded = {}
    cached = (not force and shipped.cached and recorded.get("converted_from") == shipped.source
              and (target / GGUF_FILE).is_file() and (target / WEIGHTS_FILE).is_file())
    if not cached:
        logger.info("writing the base as %s in %s (once)", cfg.weights_format.upper(), target)
        record = {"id": base_id(cfg), "source": BASE.distribution, "license": BASE.license,
                  "converted_from": shipped.source}
        write_served(shipped.path, target, cfg.weights_format, BASE.path(), record)
        recorded = json.loads((target / SOURCE_FILE).read_text())
    if "same_values_as" not in recorded:
        # adapters of earlier pz2 releases trained on the shipped values and recorded the shipped file's hash
        same = _same_values(shipped.path / WEIGHTS_FILE, target / WEIGHTS_FILE)
        recorded["same_values_as"] = shipped.source["sha256"] if same else None
        atomic_write_text(target / SOURCE_FILE, json.dumps(recorded, indent=2) + "\n")
    return PreparedBase(target, time.perf_counter() - start, cached, recorded)


def _same_values(a: Path, b: Path) -> bool:
    import numpy as np
    from safetensors.numpy import load_file

    x, y = load_file(a), load_file(b)
    return x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x)


def write_served(source: Path, target: Path, fmt: str, tokenizer: Path, record: dict) -> ServedModel:
    """Write the float checkpoint `source` as a served model in `target`: the GGUF of format `fmt`,
    and as the checkpoint, the values that GGUF holds (not `source`'s own, unless `fmt` is f32)."""
    from safetensors.numpy import save_file

    from pz2.models.gguf_export import write_model_gguf

    with atomic_directory(target) as tmp:
        served = write_model_gguf(source, tmp / GGUF_FILE, tokenizer, fmt)
        save_file(served, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        for f in source.iterdir():
            if f.is_file() and f.suffix != ".safetensors" and f.name not in (SOURCE_FILE, "model.safetensors.index.json"):
                shutil.copy2(f, tmp / f.name)
        identity = ModelIdentity(record["id"], fmt, sha256_file(tmp / GGUF_FILE))
        (tmp / SOURCE_FILE).write_text(json.dumps(record | identity.record(), indent=2) + "\n")
    return ServedModel(target, target / GGUF_FILE, identity)


def _dequantize_shipped(cfg: ModelConfig, force: bool) -> PreparedBase:
    """Step one: the shipped GGUF as float32 safetensors, unless a current conversion exists."""
    start = time.perf_counter()
    gguf = BASE.path()
    target = prepared_base_dir(cfg)
    recorded = None if force else _is_current(target, gguf)
    if recorded is not None:
        return PreparedBase(target, time.perf_counter() - start, True, recorded)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("converting %s to float32 safetensors in %s (once; about 25 s)", gguf.name, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = quantized.config
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(quantized.state_dict(), strict=False)
    # tied embeddings may be absent from the state dict; anything else missing is a broken file
    missing = [k for k in missing if k != "lm_head.weight" or not config.tie_word_embeddings]
    if missing or unexpected:
        raise ModelError(f"{gguf}: weights do not match the architecture (missing {missing[:3]}, unexpected {unexpected[:3]})")
    source = {**_source_of(gguf), "sha256": sha256_file(gguf), "license": BASE.license}
    with atomic_directory(target) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n")
    seconds = time.perf_counter() - start
    logger.info("prepared base in %.1fs", seconds)
    return PreparedBase(target, seconds, False, source)


def resolve_base(cfg: ModelConfig) -> str:
    """A path or hub id that `from_pretrained` can load offline."""
    if is_embedded(cfg):
        return str(prepare_base(cfg).path)
    return _local_or_cached(cfg.base_model, "base_model")


def served_base(cfg: ModelConfig) -> ServedModel:
    """The base the engines serve and adapters are trained on. A base of your own is served as it is:
    its folder for transformers, and for llama.cpp `runtime.engine.gguf_model` when set, otherwise a
    GGUF pz2 writes from the folder on first use (`base_gguf`), named by the base's hash."""
    if is_embedded(cfg):
        prepared = prepare_base(cfg)
        source = prepared.source
        identity = ModelIdentity(source["id"], source["format"], source["sha256"], "llama", source["same_values_as"])
        return ServedModel(prepared.path, prepared.path / GGUF_FILE, identity, embedded=True)
    path = Path(resolve_base(cfg))
    weights = sorted(path.glob("*.safetensors")) if path.is_dir() else []
    digest = ",".join(_sha256_remembered(cfg, w) for w in weights)
    config = read_json(path / "config.json", "check base_model in model_config.yaml") if path.is_dir() else {}
    identity = ModelIdentity(base_id(cfg), "safetensors", digest, config.get("model_type", "?"))
    gguf = cfg.runtime.engine.gguf_model
    if gguf is None:
        gguf = _cache_root(cfg) / "base" / f"{path.name}-{hashlib.sha256(digest.encode()).hexdigest()[:12]}" / GGUF_FILE
    return ServedModel(path, gguf.expanduser(), identity)


def float_format(model_dir: Path) -> str:
    """The GGUF format that keeps a checkpoint's values: f32 for a float32 one, else f16 (which holds
    every bfloat16 value of a model's range exactly)."""
    config = read_json(model_dir / "config.json", "give a Hugging Face model folder")
    return "f32" if str(config.get("dtype") or config.get("torch_dtype")) == "float32" else "f16"


def base_gguf(cfg: ModelConfig, served: ServedModel) -> Path:
    """The GGUF llama.cpp serves for `served`: its own, or, for a base of your own, one written once with
    the gguf package's tables beside the cache; `EngineUnavailable` when the architecture or a tensor has
    no GGUF form (the runtime then serves transformers)."""
    if served.gguf is None:
        raise EngineUnavailable(f"{served.identity.id} has no GGUF form (a merged model of an architecture "
                                "pz2 cannot write as GGUF)")
    if served.gguf.is_file():
        return served.gguf
    if cfg.runtime.engine.gguf_model is not None:
        raise ModelError(f"{served.gguf}: runtime.engine.gguf_model does not exist")
    if served.embedded:
        raise ModelError(f"{served.gguf}: the served base is missing; rebuild it with `pz2 models prepare`")
    from pz2.models.gguf_export import write_model_gguf

    fmt = float_format(served.path)
    logger.info("writing %s as a %s GGUF for llama.cpp in %s (once)", served.path, fmt.upper(), served.gguf.parent)
    try:
        with atomic_directory(served.gguf.parent) as tmp:
            write_model_gguf(served.path, tmp / GGUF_FILE, served.path, fmt)
    except ModelError as e:
        raise EngineUnavailable(str(e)) from None
    return served.gguf


def _sha256_remembered(cfg: ModelConfig, file: Path) -> str:
    """The file's sha256, hashed once per size and mtime: every engine start asks for a base's
    identity, and hashing a base of your own (gigabytes) each time would dominate the start."""
    book = _cache_root(cfg) / "sha256.json"
    try:
        known = json.loads(book.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        known = {}
    stat, key = file.stat(), str(file.resolve())
    entry = known.get(key)
    if entry and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
        return entry["sha256"]
    known[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256_file(file)}
    atomic_write_text(book, json.dumps(known, indent=1) + "\n")
    return known[key]["sha256"]


def resolve_encoder(cfg: ModelConfig, name: str | None = None, key: str = "encoder_model") -> str:
    """The folder of an encoder setting (`name`, default `encoder_model`; `key` names the setting in errors)."""
    name = cfg.encoder_model if name is None else name
    if name == EMBEDDED:
        return str(ENCODER.path())
    return _local_or_cached(name, key)


def _local_or_cached(name: str, key: str) -> str:
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise ModelError(f"`{key}`: {path} has no config.json; point it at a Hugging Face model directory")
        return str(path)
    if name.startswith((".", "/", "~")):
        raise ModelError(f"`{key}`: directory {path} does not exist")
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(name, "config.json")
    except ValueError:   # not even a well-formed hub id
        cached = None
    if not isinstance(cached, str):
        raise ModelError(f"`{key}`: {name}: no such folder, and not a model in the local Hugging Face cache "
                         f"(pz2 never downloads); give a local directory, or run `huggingface-cli download {name}` once")
    return str(Path(cached).parent)  # the cached snapshot: a local folder like any other (hashed, written as GGUF)


def embedded_tokenizer_dir(cfg: ModelConfig) -> Path:
    """A folder with the embedded base's tokenizer, without preparing the whole model.

    The prepared base's own folder when it exists; otherwise the tokenizer is read from the GGUF
    once (about 4 s) and cached on its own.
    """
    prepared = prepared_base_dir(cfg)
    if (prepared / "tokenizer.json").exists():
        return prepared
    cached = _cache_root(cfg) / "tokenizer" / BASE.name
    if not (cached / "tokenizer.json").exists():
        from transformers import AutoTokenizer

        gguf = BASE.path()
        with atomic_directory(cached) as tmp:
            AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(tmp)
    return cached


def base_tokenizer(cfg: ModelConfig) -> Any:
    """The Hugging Face tokenizer of the base, without preparing it: prompts are built exactly as in training."""
    source = embedded_tokenizer_dir(cfg) if is_embedded(cfg) else cfg.base_model
    return load_tokenizer(source, "check base_model in model_config.yaml", trust_remote_code=cfg.trust_remote_code)


def base_token_counter(cfg: ModelConfig) -> TokenCounter:
    """Count base-tokenizer tokens fast (the `tokenizers` library directly, in batches)."""
    if not is_embedded(cfg):
        tok = load_tokenizer(resolve_base(cfg), "check base_model in model_config.yaml",
                             trust_remote_code=cfg.trust_remote_code)
        return lambda texts: [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]]

    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(embedded_tokenizer_dir(cfg) / "tokenizer.json"))
    return lambda texts: [len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False)]
