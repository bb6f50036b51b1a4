"""Where models run and in what precision, decided once for training and for the transformers engine.

`auto` means what the hardware does best: bfloat16 on a GPU that supports it, float16 on an older GPU,
float32 on a CPU. An explicit choice is honoured where it can run (bfloat16 runs on a CPU too, slowly
and correctly, which is how the GPU's mixed-precision path is tested where CI has no GPU) and refused
in one line where it cannot.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pz2.config import DtypeName, EngineConfig, Precision
from pz2.errors import ConfigError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def gpu_dtype() -> torch.dtype:
    """bfloat16 where the GPU has it (Ampere and newer): float32's range, so no loss scaling; else float16."""
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def resolve_device(name: str) -> torch.device:
    """`auto`: the first CUDA GPU when there is one, else the CPU. A GPU asked for but absent is an error,
    not a silent fall back to a CPU that answers a hundred times slower."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(None, f"`runtime.engine.device: {name}`: torch {torch.__version__} sees no CUDA GPU on this machine; "
                              "use auto or cpu")
        if (device.index or 0) >= count:
            raise ConfigError(None, f"`runtime.engine.device: {name}`: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
    return device


def resolve_dtype(name: DtypeName, device: torch.device) -> torch.dtype:
    """`auto`: float32 on a CPU (its matrix kernels are fastest there), the GPU's half precision on a GPU."""
    if name == "auto":
        return torch.float32 if device.type == "cpu" else gpu_dtype()
    dtype = DTYPES[name]
    if dtype is torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(None, f"`runtime.engine.dtype: bfloat16`: {torch.cuda.get_device_name(device)} has no bfloat16; "
                          "use float16 or auto")
    return dtype


def training_dtype(precision: Precision, cpu: bool) -> torch.dtype:
    """The compute dtype of LoRA training (`sft.precision`). fp16 trains only on a GPU: it needs loss
    scaling, which runs on CUDA; bf16 has float32's range and trains anywhere."""
    if precision == "auto":
        return torch.float32 if cpu else gpu_dtype()
    if precision == "fp16" and cpu:
        raise ConfigError(None, "`sft.precision: fp16` needs a CUDA GPU (loss scaling); on a CPU use bf16 or fp32")
    if precision == "bf16" and not cpu and not torch.cuda.is_bf16_supported():
        raise ConfigError(None, f"`sft.precision: bf16`: {torch.cuda.get_device_name()} has no bfloat16; "
                          "use fp16 or auto")
    return PRECISIONS[precision]


@dataclass(frozen=True)
class Placement:
    """Where a transformers model is loaded and in what dtype; its inputs follow it there."""

    device: torch.device
    dtype: torch.dtype

    @classmethod
    def of(cls, cfg: EngineConfig) -> Placement:
        """The transformers engine's (`runtime.engine.device` / `dtype`), also used by every model loaded to
        score text outside an engine (the loss in `eval compare`)."""
        device = resolve_device(cfg.device)
        return cls(device, resolve_dtype(cfg.dtype, device))


EXACT = Placement(torch.device("cpu"), torch.float32)   # merging and exporting: every value kept
