"""Time, tokens and number of llama.cpp decode calls of one engine's decoder, for the benchmarks that split an
answer's time between llama.cpp and the rest."""

from __future__ import annotations

import time
from typing import Any


class DecodeClock:
    def __init__(self, decoder: Any) -> None:
        """`decoder`: a runtime/llamacpp_batch.BatchDecoder, whose calls are counted until `stop`."""
        self.seconds, self.tokens, self.calls = 0.0, 0, 0
        self.decoder, self.lib, clock = decoder, decoder.lib, self
        lib = self.lib

        class Timed:
            def __getattr__(self, name: str) -> Any:   # the library's other functions, as they are
                return getattr(lib, name)

            def llama_decode(self, ctx: Any, batch: Any) -> int:
                start = time.perf_counter()
                try:
                    return lib.llama_decode(ctx, batch)
                finally:
                    clock.seconds += time.perf_counter() - start
                    clock.tokens += batch.n_tokens
                    clock.calls += 1

        decoder.lib = Timed()

    def reset(self) -> None:
        self.seconds, self.tokens, self.calls = 0.0, 0, 0

    def stop(self) -> None:
        self.decoder.lib = self.lib
