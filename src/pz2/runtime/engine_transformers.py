"""The reference engine: transformers + PEFT, adapters switched on one PeftModel.

Slower than llama.cpp on a CPU, but it is what training produced, it runs on GPUs (`runtime.engine.device`,
in bfloat16 there by default: `runtime.engine.dtype`), and it serves full-model specialists (a fine-tuned
model directory instead of an adapter), on the same device and in the same dtype as the base.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pz2.config import EngineConfig, ModelConfig
from pz2.errors import ModelError
from pz2.models.artifacts import pretrained
from pz2.models.base import load_base, load_causal_lm
from pz2.models.loading import find_trained
from pz2.models.precision import Placement
from pz2.models.served import ModelIdentity, ServedModel
from pz2.models.transformers_names import returned_cache, with_cache
from pz2.runtime.engine import Decoding, LocalEngine


class TransformersEngine(LocalEngine):
    name = "transformers"

    def __init__(self, base: Any, tokenizer: Any, system_prompt: str, settings: EngineConfig,
                 served: ModelIdentity | None = None, trust_remote_code: bool = False) -> None:
        """`base`: the served model, loaded where it runs; `settings`: runtime.engine (context_length and the
        decoding rules); `served`: what `base` is, so adapters trained on another model are refused."""
        super().__init__(tokenizer, system_prompt, settings, served)
        self.model = base          # becomes a PeftModel with the first adapter; its device and dtype are the engine's
        self.full: dict[str, Any] = {}
        self.trust_remote_code = trust_remote_code
        self._active: Any = None
        self._cache: Any = None

    @classmethod
    def from_config(cls, cfg: ModelConfig, served: ServedModel) -> TransformersEngine:
        import torch

        if cfg.runtime.engine.threads:
            torch.set_num_threads(cfg.runtime.engine.threads)
        base, tokenizer = load_base(cfg, served.path)   # on runtime.engine.device, in runtime.engine.dtype
        return cls(base, tokenizer, cfg.system_prompt, cfg.runtime.engine, served.identity, cfg.trust_remote_code)

    def _load(self, name: str, path: Path) -> int:
        from peft import PeftModel

        trained = find_trained(path)
        if trained.kind == "adapter":
            if isinstance(self.model, PeftModel):
                self.model.load_adapter(str(trained.path), adapter_name=name)
            else:
                self.model = pretrained(lambda a: PeftModel.from_pretrained(self.model, str(a), adapter_name=name),
                                        trained.path, "LoRA adapter", "retrain the adapter").eval()
            return sum(p.numel() * p.element_size() for n, p in self.model.named_parameters() if f".{name}." in n)
        if trained.kind == "gguf":
            raise ModelError(f"{trained.path}: a GGUF file is served by runtime.engine.backend: llamacpp")
        model = load_causal_lm(path, "retrain or re-export the model", Placement(self.model.device, self.model.dtype),
                               self.trust_remote_code)
        self.full[name] = model
        return sum(p.numel() * p.element_size() for p in model.parameters())

    def _unload(self, name: str) -> None:
        if self.full.pop(name, None) is None:
            self.model.delete_adapter(name)

    def _forward(self, ids: list[int]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self._active(input_ids=torch.tensor([ids], device=self.model.device), use_cache=True,
                               logits_to_keep=1, **with_cache(self._cache))
        self._cache = returned_cache(out)
        return out.logits[0, -1].float().cpu().numpy()

    def _decode(self, adapter: str | None, prompt: list[int], decoding: Decoding, reuse: bool) -> None:
        """One answer at a time: the model and its adapter are switched per request, under the engine's lock."""
        with self.lock:
            logits = self._start(adapter, prompt)
            while (token := decoding.step(logits)) is not None:
                logits = self._forward([token])

    def _start(self, adapter: str | None, ids: list[int]) -> np.ndarray:   # no cache to reuse
        from peft import PeftModel

        self._cache = None
        if adapter in self.full:
            self._active = self.full[adapter]
        elif isinstance(self.model, PeftModel):
            if adapter is None:
                self.model.base_model.disable_adapter_layers()
            else:
                self.model.base_model.enable_adapter_layers()
                self.model.set_adapter(adapter)
            self._active = self.model
        else:
            self._active = self.model
        return self._forward(ids)
