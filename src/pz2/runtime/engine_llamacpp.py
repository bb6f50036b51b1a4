"""The default engine: llama.cpp on the served GGUF (the base, or the unified model merged into
it), PEFT adapters served as GGUF LoRA.

Training sees the dequantized values of the very GGUF served (models/prepare.py), so the served
base is the trained base. Adapters are converted once (float32, exact) into the cache,
keyed by the adapter's hash; loading one into the live model takes milliseconds and switching
between loaded adapters microseconds. A specialist may also be a whole GGUF model, served by a
second llama.cpp instance. Each model decodes through a `BatchDecoder` (runtime/llamacpp_batch.py):
`runtime.engine.parallel` answers at once, each in its own KV-cache slot.
"""

from __future__ import annotations

import hashlib
import weakref
from pathlib import Path
from typing import Any

from pz2.config import EngineConfig, ModelConfig
from pz2.errors import EngineUnavailable, ModelError
from pz2.fileio import sha256_file
from pz2.models.artifacts import read_json
from pz2.models.gguf_export import lora_weights, write_lora_gguf
from pz2.models.loading import find_trained
from pz2.models.prepare import base_gguf, base_tokenizer
from pz2.models.served import ModelIdentity, ServedModel
from pz2.runtime.cpu_share import free_threads, usable_cores
from pz2.runtime.engine import Decoding, LocalEngine
from pz2.runtime.llamacpp_batch import BatchDecoder


def _llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError:
        raise ModelError("the llamacpp engine needs llama-cpp-python: run `make setup`, or set "
                         "runtime.engine.backend: transformers in model_config.yaml") from None
    return llama_cpp


class LlamaCppEngine(LocalEngine):
    name = "llamacpp"

    def __init__(self, gguf: Path, tokenizer: Any, system_prompt: str, settings: EngineConfig,
                 cache_dir: Path = Path("~/.cache/pz2"), served: ModelIdentity | None = None) -> None:
        """`settings`: runtime.engine (threads, context_length, flash_attention and the decoding rules);
        `served`: what `gguf` is, so adapters trained on another model are refused."""
        super().__init__(tokenizer, system_prompt, settings, served)
        self.lib = _llama_cpp()
        self.flash_attention = settings.flash_attention
        self.threads = settings.threads   # 0: the cores free before each answer (runtime/cpu_share.py)
        self.slots = settings.parallel
        self.llm = self._open(gguf)
        self.decoder = self._decoder(self.llm)
        self.lora_cache = cache_dir.expanduser() / "lora"
        self.adapters: dict[str, Any] = {}
        self.full: dict[str, tuple[Any, BatchDecoder]] = {}   # whole-model specialists: the model, its decoder
        meta = self.llm.metadata
        arch = meta.get("general.architecture", "?")
        if f"{arch}.attention.head_count" not in meta:
            raise ModelError(f"{gguf}: a GGUF of architecture {arch!r} without `{arch}.attention.head_count`; "
                             "pz2 cannot put its adapters on it (set runtime.engine.backend: transformers)")
        self.arch = arch
        self.n_head = int(meta[f"{arch}.attention.head_count"])
        self.n_head_kv = int(meta.get(f"{arch}.attention.head_count_kv", self.n_head))
        self.n_layers = int(meta.get(f"{arch}.block_count", 0))

    @classmethod
    def from_config(cls, cfg: ModelConfig, served: ServedModel) -> LlamaCppEngine:
        gguf, tokenizer = base_gguf(cfg, served), base_tokenizer(cfg)
        try:
            return cls(gguf, tokenizer, cfg.system_prompt, cfg.runtime.engine, cfg.cache_dir, served.identity)
        except ModelError as error:   # a GGUF pz2 wrote that this llama.cpp refuses: transformers serves it
            if served.embedded or cfg.runtime.engine.gguf_model is not None:
                raise
            raise EngineUnavailable(str(error)) from None

    def _open(self, gguf: Path) -> Any:
        """The model without llama.cpp's extra weight buffers. On a CPU with AMX, quantized weights
        go to an AMX buffer that LoRA cannot use ("cannot use buft 'AMX', fallback to CPU"), and
        decoding then crashes the process (general protection fault in libggml-cpu, seen with the
        shipped Q4_1 base). Llama() has no switch for `use_extra_bufts`, so its default model
        parameters are wrapped while it is built; the weights are the same, only their layout differs."""
        params = self.lib.llama_cpp
        defaults = params.llama_model_default_params

        def without_extra_buffers() -> Any:
            p = defaults()
            p.use_extra_bufts = False
            return p

        params.llama_model_default_params = without_extra_buffers
        try:
            threads = self.threads or usable_cores()
            # the Llama's own context is never decoded with (the BatchDecoder's is): it is kept small
            return self.lib.Llama(model_path=str(gguf), n_ctx=256, n_threads=threads, n_threads_batch=threads,
                                  n_batch=256, logits_all=False, flash_attn=self.flash_attention, verbose=False)
        except ValueError as e:
            raise ModelError(f"{gguf}: llama.cpp cannot load it ({e})") from None
        finally:
            params.llama_model_default_params = defaults

    def _decoder(self, llm: Any) -> BatchDecoder:
        """The decoder thread over `llm`; at the engine's end it is closed before the model is freed."""
        threads = self.threads   # not `self`: the decoder must not keep the engine alive
        decoder = BatchDecoder(self.lib, llm.model, llm.context_params, self.slots, self.context_length,
                               lambda: threads or free_threads())
        weakref.finalize(self, decoder.close)
        return decoder

    def close(self) -> None:
        """Free the decoders' contexts, then the models (in that order: a context uses its model)."""
        for name in list(self.full):
            self._unload(name)
        self.decoder.close()
        self.llm.close()

    @property
    def parallel(self) -> int:
        return self.slots

    def model_path(self, served: ServedModel) -> Path:
        return served.gguf

    def lora_gguf(self, adapter: Path) -> Path:
        """The adapter as GGUF LoRA, converted once per adapter content: its weights and its config
        (rank and alpha set the scale), which is read, and so checked, even when the conversion is cached."""
        weights, config = lora_weights(adapter), adapter / "adapter_config.json"
        read_json(config, "retrain the adapter", {"r": int, "lora_alpha": (int, float)})
        digest = hashlib.sha256(sha256_file(weights).encode() + config.read_bytes()).hexdigest()[:16]
        out = self.lora_cache / f"{digest}-{self.arch}-h{self.n_head}-{self.n_head_kv}.gguf"
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            write_lora_gguf(adapter, out, self.arch, self.n_head, self.n_head_kv, self.n_layers)
        return out

    def _load(self, name: str, path: Path) -> int:
        trained = find_trained(path)
        if trained.kind == "adapter":
            gguf = self.lora_gguf(trained.path)
            handle = self.lib.llama_adapter_lora_init(self.llm.model, str(gguf).encode())
            if not handle:
                raise ModelError(f"{trained.path}: llama.cpp refused the adapter (does it belong to this base?)")
            self.adapters[name] = handle
            return gguf.stat().st_size
        if trained.kind == "full":
            raise ModelError(f"{path}: the llamacpp engine serves a LoRA adapter folder or one .gguf model; "
                             "for a Hugging Face model folder use runtime.engine.backend: transformers")
        llm = self._open(trained.path)
        self.full[name] = llm, self._decoder(llm)
        return trained.path.stat().st_size

    def _unload(self, name: str) -> None:
        if name in self.full:
            llm, decoder = self.full.pop(name)
            decoder.close()
            llm.close()
            return
        handle = self.adapters.pop(name)
        self.decoder.forget(handle)
        self.lib.llama_adapter_lora_free(handle)

    def _decode(self, adapter: str | None, prompt: list[int], decoding: Decoding, reuse: bool) -> None:
        if adapter in self.full:
            self.full[adapter][1].run(None, None, prompt, decoding, reuse)
            return
        if adapter is not None and adapter not in self.adapters:   # unloaded since the request was checked
            raise ModelError(f"{adapter}: not loaded in the {self.name} engine")
        self.decoder.run(adapter, self.adapters.get(adapter), prompt, decoding, reuse)
