"""Write GGUF files for llama.cpp: PEFT LoRA adapters, and whole models of the architectures below.

The adapter writer is what lets llama.cpp serve the adapters pz2 trains: its converter lives only
in the llama.cpp source tree and breaks with the `gguf` release on PyPI. The model writer writes
a checkpoint as F32 (exact: how the two engines are proven to give the same answer), F16, Q8_0 or
Q4_1 or Q4_0 (the served formats), and hands back the float values the
file holds, so that training can see exactly the weights that are served.

Tensor names come from the `gguf` package's own tables (`TensorNameMap` of the architecture);
what differs per architecture beyond names is in `Arch`: llama.cpp's Llama graph pairs rotary
dimensions differently from Hugging Face, so its converter permutes the rows of q/k (and a LoRA
update B·A the same way, by permuting the rows of B); Gemma's norms scale by (1 + w), which
llama.cpp stores as w + 1; Gemma 2 caps its logits. An architecture not in `ARCHITECTURES`, or a
tensor the table does not know, is refused with the reason (the runtime then serves transformers).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import numpy as np

from pz2.config import WeightFormat
from pz2.errors import ModelError
from pz2.models.artifacts import read_json


@dataclass(frozen=True)
class Arch:
    """What pz2 must know of an architecture beyond the tensor names gguf's tables give."""

    name: str                        # llama.cpp's architecture (a gguf.MODEL_ARCH member)
    permute_qk: bool = False         # Llama's rotary layout (llama, mistral)
    norm_plus_one: bool = False      # Gemma's RMSNorm multiplies by (1 + w)
    softcap: bool = False            # Gemma 2: attention and final logit soft-capping


# Hugging Face `model_type` -> the architecture llama.cpp runs it as
ARCHITECTURES: dict[str, Arch] = {
    "llama": Arch("LLAMA", permute_qk=True),
    "mistral": Arch("LLAMA", permute_qk=True),
    "qwen2": Arch("QWEN2"),
    "gemma": Arch("GEMMA", norm_plus_one=True),
    "gemma2": Arch("GEMMA2", norm_plus_one=True, softcap=True),
    "phi3": Arch("PHI3"),
}
_LORA = re.compile(r"(?:base_model\.model\.)?(model\.layers\.\d+\..+)\.lora_([AB])\.weight$")


def architecture(config: dict) -> Arch:
    """The llama.cpp architecture of a Hugging Face config, or the one-line reason there is none."""
    model_type = config.get("model_type")
    if model_type not in ARCHITECTURES:
        raise ModelError(f"model_type {model_type!r}: pz2 writes GGUF for {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[model_type]


def served_as(llama_cpp_arch: str) -> Arch:
    """The `Arch` of a model llama.cpp has loaded (its `general.architecture`)."""
    found = next((a for a in ARCHITECTURES.values() if a.name.lower() == llama_cpp_arch), None)
    if found is None:
        known = sorted({a.name.lower() for a in ARCHITECTURES.values()})
        raise ModelError(f"llama.cpp architecture {llama_cpp_arch!r}: pz2 converts adapters for {', '.join(known)}")
    return found


class TensorNames:
    """Hugging Face weight name -> llama.cpp tensor name, from gguf's table for the architecture."""

    def __init__(self, arch: Arch, n_layers: int) -> None:
        import gguf

        self.map = gguf.get_tensor_name_map(gguf.MODEL_ARCH[arch.name], n_layers)
        self.arch = arch

    def __call__(self, hf_name: str) -> str:
        name = self.map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise ModelError(f"{hf_name}: no llama.cpp tensor of architecture {self.arch.name.lower()} for this weight")
        return name


def permute_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """Hugging Face's rotary layout to llama.cpp's, applied to the output rows of q/k (or of LoRA B)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _rotary_heads(name: str, n_head: int, n_head_kv: int, arch: Arch) -> int | None:
    """The heads whose rows a q/k tensor of `arch` is permuted by; None: not permuted."""
    if not arch.permute_qk:
        return None
    if ".attn_q." in name:
        return n_head
    if ".attn_k." in name:
        return n_head_kv
    return None


def _write(writer: Any, out: Path) -> None:
    """Write then rename: a killed run never leaves a truncated GGUF that llama.cpp would half-read."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        writer.write_header_to_file(path=tmp)
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def _writer(arch: Arch) -> Any:
    import gguf

    return gguf.GGUFWriter(path=None, arch=gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH[arch.name]])


def lora_weights(adapter: Path) -> Path:
    """The adapter's weights file; a folder without both PEFT files is not an adapter."""
    weights = adapter / "adapter_model.safetensors"
    if not (adapter / "adapter_config.json").is_file() or not weights.is_file():
        raise ModelError(f"{adapter}: not a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors)")
    return weights


def write_lora_gguf(adapter: Path, out: Path, llama_cpp_arch: str, n_head: int, n_head_kv: int,
                    n_layers: int) -> Path:
    """Convert a PEFT LoRA adapter folder to a llama.cpp LoRA GGUF (float32, exact) for a model that
    llama.cpp runs as `llama_cpp_arch` (its `general.architecture`)."""
    import gguf
    from safetensors.numpy import load_file

    arch = served_as(llama_cpp_arch)
    names = TensorNames(arch, n_layers)
    weights_path = lora_weights(adapter)
    cfg = read_json(adapter / "adapter_config.json", "retrain the adapter (not a LoRA adapter config)",
                    {"r": int, "lora_alpha": (int, float)})
    unsupported = [k for k in ("use_dora", "modules_to_save") if cfg.get(k)]
    if cfg.get("peft_type", "LORA") != "LORA" or unsupported:
        raise ModelError(f"{adapter}: llama.cpp serves plain LoRA only ({', '.join(unsupported) or cfg.get('peft_type')})")
    alpha = float(cfg["lora_alpha"])
    if cfg.get("use_rslora"):
        alpha *= float(cfg["r"]) ** 0.5  # rsLoRA scales by alpha/sqrt(r); llama.cpp by alpha/r

    pairs: dict[str, dict[str, np.ndarray]] = {}
    for key, value in load_file(weights_path).items():
        m = _LORA.match(key)
        if not m:
            raise ModelError(f"{adapter}: {key} is not a LoRA weight of a transformer layer")
        pairs.setdefault(names(m.group(1) + ".weight"), {})[m.group(2)] = value.astype(np.float32)

    writer = _writer(arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    for name in sorted(pairs):
        a, b = pairs[name]["A"], pairs[name]["B"]
        heads = _rotary_heads(name, n_head, n_head_kv, arch)
        if heads and b.shape[0] % (2 * heads):
            raise ModelError(f"{adapter}: {name} has {b.shape[0]} outputs, which {heads} attention heads "
                             "cannot split: the adapter belongs to another base")
        writer.add_tensor(f"{name}.lora_a", a)
        writer.add_tensor(f"{name}.lora_b", permute_rows(b, heads) if heads else b)
    _write(writer, out)
    return out


def add_tokenizer(writer: Any, source: Path, vocab_size: int) -> None:
    """The vocabulary of the model: copied from a GGUF of the same vocabulary (`source` a .gguf: the
    embedded base's), or built from a Hugging Face tokenizer folder. pz2 tokenizes and detokenizes with
    the Hugging Face tokenizer and hands llama.cpp token ids, so the GGUF's vocabulary only has to load
    and line up id for id: tokens in id order (padded to the embedding's rows, as llama.cpp's converter
    does), their types, the merges and special ids of tokenizer.json, and no pre-tokenizer."""
    import gguf
    from transformers import AutoTokenizer

    if source.suffix == ".gguf":
        copy_tokenizer_fields(writer, source)
        return
    tokenizer = AutoTokenizer.from_pretrained(source)
    special = set(tokenizer.all_special_ids) | {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    tokens, types = [], []
    for i in range(vocab_size):
        piece = pieces[i] if i < len(pieces) else None
        tokens.append(f"[PAD{i}]" if piece is None else piece)
        types.append(gguf.TokenType.UNUSED if piece is None else
                     gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL)
    vocab = gguf.SpecialVocab(source, load_merges=True, n_vocab=vocab_size)
    if vocab.merges:
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre("default")
    else:
        writer.add_tokenizer_model("llama")
        writer.add_token_scores([0.0] * vocab_size)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    vocab.add_to_gguf(writer)


def copy_tokenizer_fields(writer: Any, source: Path) -> None:
    """Copy the tokenizer (vocabulary, merges, special ids, chat template) of another GGUF."""
    import gguf

    reader = gguf.GGUFReader(source)
    for name, field in reader.fields.items():
        if not name.startswith("tokenizer."):
            continue
        main = field.types[0]
        sub = field.types[-1] if main == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(name, field.contents(), main, sub)


FORMATS = get_args(WeightFormat)
_QUANTIZED = {"q4_0": "Q4_0", "q4_1": "Q4_1", "q8_0": "Q8_0"}
_FILE_TYPE = {"q4_0": "MOSTLY_Q4_0", "q4_1": "MOSTLY_Q4_1", "q8_0": "MOSTLY_Q8_0", "f16": "MOSTLY_F16", "f32": "ALL_F32"}


def tensor_format(hf_name: str, w: np.ndarray, dtype: str) -> str:
    """What one tensor is stored as in a model of format `dtype`, as llama.cpp's quantizer chooses:
    norms stay float32; in a 4-bit model the embedding (which a tied model also reads out with) keeps
    8 bits, as the shipped base has it; a row that does not split into 32-value blocks stays float."""
    if w.ndim != 2 or dtype == "f32":
        return "f32"
    if dtype == "f16" or w.shape[-1] % 32:
        return "f16"
    if dtype in ("q4_0", "q4_1") and hf_name in ("model.embed_tokens.weight", "lm_head.weight"):
        return "q8_0"
    return dtype


def encode(w: np.ndarray, fmt: str) -> tuple[np.ndarray, np.ndarray]:
    """(what the GGUF stores, the float32 values llama.cpp reads back from it)."""
    import gguf

    if fmt == "f32":
        w = w.astype(np.float32)
        return w, w
    if fmt == "f16":
        w = w.astype(np.float16)
        return w, w.astype(np.float32)
    qtype = gguf.GGMLQuantizationType[_QUANTIZED[fmt]]
    blocks = gguf.quants.quantize(w.astype(np.float32), qtype)
    return blocks, gguf.quants.dequantize(blocks, qtype).astype(np.float32).reshape(w.shape)


def _rope_theta(config: dict) -> float:
    """rope_theta where transformers 4 (top level) or 5 (`rope_parameters`) keeps it."""
    params = config.get("rope_parameters") or {}
    return float(config.get("rope_theta") or params.get("rope_theta") or 10000.0)


def _add_hyperparameters(writer: Any, config: dict, arch: Arch, head_dim: int, n_head: int, n_head_kv: int) -> None:
    writer.add_context_length(config.get("max_position_embeddings", 2048))
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_freq_base(_rope_theta(config))
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
    writer.add_rope_dimension_count(int(head_dim * config.get("partial_rotary_factor", 1.0)))
    writer.add_vocab_size(config["vocab_size"])
    if arch.softcap:
        writer.add_attn_logit_softcapping(float(config["attn_logit_softcapping"]))
        writer.add_final_logit_softcapping(float(config["final_logit_softcapping"]))
    if config.get("sliding_window") and arch.name in ("GEMMA2", "PHI3"):
        writer.add_sliding_window(int(config["sliding_window"]))


def write_model_gguf(model_dir: Path, out: Path, tokenizer: Path, dtype: WeightFormat = "f32") -> dict[str, np.ndarray]:
    """Write a Hugging Face checkpoint of an architecture of `ARCHITECTURES` as a llama.cpp GGUF of
    format `dtype` (`FORMATS`); returns the weights as llama.cpp will read them (Hugging Face names and
    layout, float32), which is what makes an exact copy for training possible: for f32 they are the
    checkpoint's own. `tokenizer`: a GGUF of the same vocabulary or a Hugging Face tokenizer folder."""
    import gguf
    from safetensors.numpy import load_file

    if dtype not in FORMATS:
        raise ModelError(f"{dtype!r}: not a GGUF format pz2 writes; choose one of {list(FORMATS)}")
    config = read_json(model_dir / "config.json", "give a Hugging Face model folder", {"model_type": str})
    try:
        arch = architecture(config)
    except ModelError as e:
        raise ModelError(f"{model_dir}: {e}") from None
    names = TensorNames(arch, config["num_hidden_layers"])
    n_head = config["num_attention_heads"]
    n_head_kv = config.get("num_key_value_heads") or n_head
    head_dim = config.get("head_dim") or config["hidden_size"] // n_head
    weights: dict[str, np.ndarray] = {}
    for shard in sorted(model_dir.glob("*.safetensors")):
        weights.update(load_file(shard))
    tied = bool(config.get("tie_word_embeddings"))
    kept = sorted(n for n in weights if not (tied and n == "lm_head.weight"))
    placed = {n: names(n) for n in kept}   # every tensor has a place before anything is written

    writer = _writer(arch)
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(model_dir.name)
    _add_hyperparameters(writer, config, arch, head_dim, n_head, n_head_kv)
    writer.add_file_type(gguf.LlamaFileType[_FILE_TYPE[dtype]])
    add_tokenizer(writer, tokenizer, config["vocab_size"])
    served: dict[str, np.ndarray] = {}
    for hf_name in kept:
        name, w = placed[hf_name], weights[hf_name]
        fmt = tensor_format(hf_name, w, dtype)
        stored, served[hf_name] = encode(w, fmt)
        if arch.norm_plus_one and hf_name.endswith("norm.weight"):
            stored = encode(w.astype(np.float32) + 1, fmt)[0]
        heads = _rotary_heads(name, n_head, n_head_kv, arch)
        if heads:  # quantization blocks lie within a row, so permuting rows commutes with it
            stored = permute_rows(stored, heads)
        raw = gguf.GGMLQuantizationType[_QUANTIZED[fmt]] if fmt in _QUANTIZED else None
        writer.add_tensor(name, stored, raw_dtype=raw)
    _write(writer, out)
    return served
