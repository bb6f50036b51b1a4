"""Write GGUF files for llama.cpp: PEFT LoRA adapters, and whole Llama models.

The adapter writer is what lets llama.cpp serve the adapters pz2 trains: its converter lives only
in the llama.cpp source tree and breaks with the `gguf` release on PyPI. The model writer writes
a checkpoint as F32 (exact: how the two engines are proven to give the same answer), F16, Q8_0 or
Q4_1 or Q4_0 (the served formats), and hands back the float values the
file holds, so that training can see exactly the weights that are served.

llama.cpp's own converter permutes the rows of q/k projections (its rotary embedding pairs
dimensions differently from Hugging Face); a LoRA update B·A of such a projection is permuted
the same way by permuting the rows of B.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, get_args

import numpy as np

from pz2.config import WeightFormat
from pz2.errors import ModelError
from pz2.models.artifacts import read_json

_MODULES = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
}
_GLOBAL = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
           "lm_head.weight": "output.weight"}
_LAYER = re.compile(r"model\.layers\.(\d+)\.(.+)\.weight$")
_LORA = re.compile(r"(?:base_model\.model\.)?(model\.layers\.\d+\..+)\.lora_([AB])\.weight$")


def gguf_name(hf_name: str) -> str:
    """llama.cpp's tensor name for a Hugging Face Llama weight."""
    if hf_name in _GLOBAL:
        return _GLOBAL[hf_name]
    m = _LAYER.match(hf_name)
    if not m or m.group(2) not in _MODULES:
        raise ModelError(f"{hf_name}: no llama.cpp tensor for this weight (only Llama-architecture layers are supported)")
    return f"blk.{m.group(1)}.{_MODULES[m.group(2)]}.weight"


def permute_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """Hugging Face's rotary layout to llama.cpp's, applied to the output rows of q/k (or of LoRA B)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _rotary_heads(name: str, n_head: int, n_head_kv: int) -> int | None:
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


def lora_weights(adapter: Path) -> Path:
    """The adapter's weights file; a folder without both PEFT files is not an adapter."""
    weights = adapter / "adapter_model.safetensors"
    if not (adapter / "adapter_config.json").is_file() or not weights.is_file():
        raise ModelError(f"{adapter}: not a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors)")
    return weights


def write_lora_gguf(adapter: Path, out: Path, n_head: int, n_head_kv: int) -> Path:
    """Convert a PEFT LoRA adapter folder to a llama.cpp LoRA GGUF (float32, exact)."""
    import gguf
    from safetensors.numpy import load_file

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
        pairs.setdefault(gguf_name(m.group(1) + ".weight"), {})[m.group(2)] = value.astype(np.float32)

    writer = gguf.GGUFWriter(path=None, arch="llama")
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    for name in sorted(pairs):
        a, b = pairs[name]["A"], pairs[name]["B"]
        heads = _rotary_heads(name, n_head, n_head_kv)
        if heads and b.shape[0] % (2 * heads):
            raise ModelError(f"{adapter}: {name} has {b.shape[0]} outputs, which {heads} attention heads "
                             "cannot split: the adapter belongs to another base")
        writer.add_tensor(f"{name}.lora_a", a)
        writer.add_tensor(f"{name}.lora_b", permute_rows(b, heads) if heads else b)
    _write(writer, out)
    return out


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


def write_model_gguf(model_dir: Path, out: Path, tokenizer_gguf: Path, dtype: WeightFormat = "f32") -> dict[str, np.ndarray]:
    """Write a Hugging Face Llama checkpoint as a llama.cpp GGUF of format `dtype` (`FORMATS`);
    returns the weights as llama.cpp will read them (Hugging Face names and layout, float32), which
    is what makes an exact copy for training possible: for f32 they are the checkpoint's own.

    The tokenizer comes from `tokenizer_gguf` (a GGUF of the same vocabulary: the embedded base's),
    since rebuilding llama.cpp's vocabulary tables from tokenizer.json is the converter's largest part.
    """
    import gguf
    from safetensors.numpy import load_file

    if dtype not in FORMATS:
        raise ModelError(f"{dtype!r}: not a GGUF format pz2 writes; choose one of {list(FORMATS)}")
    config = read_json(model_dir / "config.json", "give a Hugging Face model folder", {"model_type": str})
    if config.get("model_type") != "llama":
        raise ModelError(f"{model_dir}: model_type {config.get('model_type')!r}; only llama is written as GGUF")
    n_head, n_head_kv = config["num_attention_heads"], config.get("num_key_value_heads", config["num_attention_heads"])
    head_dim = config.get("head_dim") or config["hidden_size"] // n_head
    weights: dict[str, np.ndarray] = {}
    for shard in sorted(model_dir.glob("*.safetensors")):
        weights.update(load_file(shard))

    writer = gguf.GGUFWriter(path=None, arch="llama")
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(model_dir.name)
    writer.add_context_length(config.get("max_position_embeddings", 2048))
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    writer.add_rope_freq_base(float(config.get("rope_theta") or (config.get("rope_parameters") or {}).get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-5)))
    writer.add_rope_dimension_count(head_dim)
    writer.add_vocab_size(config["vocab_size"])
    writer.add_file_type(gguf.LlamaFileType[_FILE_TYPE[dtype]])
    copy_tokenizer_fields(writer, tokenizer_gguf)
    served: dict[str, np.ndarray] = {}
    for hf_name in sorted(weights):
        if hf_name == "lm_head.weight" and config.get("tie_word_embeddings"):
            continue
        name = gguf_name(hf_name)
        fmt = tensor_format(hf_name, weights[hf_name], dtype)
        stored, served[hf_name] = encode(weights[hf_name], fmt)
        heads = _rotary_heads(name, n_head, n_head_kv)
        if heads:  # quantization blocks lie within a row, so permuting rows commutes with it
            stored = permute_rows(stored, heads)
        raw = gguf.GGMLQuantizationType[_QUANTIZED[fmt]] if fmt in _QUANTIZED else None
        writer.add_tensor(name, stored, raw_dtype=raw)
    _write(writer, out)
    return served
