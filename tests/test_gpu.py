"""The GPU path of training: precision, gradient checkpointing and QLoRA. The choices are checked on any
machine; the training runs need CUDA and are skipped, with the reason, where there is none."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import SFT_FAST
from pz2.config import SFTConfig
from pz2.errors import UsageError
from pz2.training.sft import Device, train_sft
from pz2.workspace import Workspace

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")


def test_the_device_defaults_fit_the_machine() -> None:
    device = Device.detect(SFTConfig())
    if torch.cuda.is_available():
        assert device.checkpointing and (device.bf16 != device.fp16) and not device.cpu
    else:
        assert (device.cpu, device.bf16, device.fp16, device.checkpointing) == (True, False, False, False)
        assert device.dtype == torch.float32
    assert Device.detect(SFTConfig(gradient_checkpointing=True)).checkpointing


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU machine QLoRA is allowed")
def test_qlora_on_a_cpu_is_refused_in_one_line() -> None:
    with pytest.raises(UsageError, match="load_in_4bit .* needs a CUDA GPU"):
        Device.detect(SFTConfig(load_in_4bit=True))


@CUDA
def test_a_lora_trains_on_the_gpu_in_half_precision_with_checkpointing(hybrid: Workspace) -> None:
    result = train_sft(hybrid, "unified", SFTConfig(**SFT_FAST), hybrid.model_config())
    manifest = json.loads((result.path / "manifest.json").read_text())
    assert manifest["config"]["gradient_checkpointing"] is None and result.metrics["global_step"] == 4
    assert result.metrics["eval_loss"] == result.metrics["eval_loss"]   # finite, not NaN


@CUDA
def test_qlora_trains_a_4_bit_base(hybrid: Workspace) -> None:
    pytest.importorskip("bitsandbytes", reason="QLoRA needs bitsandbytes (pip install bitsandbytes)")
    result = train_sft(hybrid, "unified", SFTConfig(**SFT_FAST, load_in_4bit=True), hybrid.model_config())
    assert result.metrics["global_step"] == 4 and result.metrics["eval_loss"] == result.metrics["eval_loss"]
