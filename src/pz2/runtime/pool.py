"""The specialist pool: specialists enter memory when needed and leave by least recent use.

A specialist in use is pinned and never evicted; loading happens outside the pool's lock, so a
slow load blocks only the requests that need that specialist; a background preload is the same
load started early. A failed load is remembered with its reason (the router falls back to the
unified answer and says why) and tried again on the next request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from pz2.errors import Pz2Error
from pz2.models.artifacts import first_line
from pz2.runtime.engine import Engine

logger = logging.getLogger(__name__)

UNLOADED, LOADING, LOADED, FAILED = "unloaded", "loading", "loaded", "failed"


class SpecialistUnavailable(Pz2Error):
    """A specialist could not be loaded; the message says why."""


class SpecialistPool:
    def __init__(self, engine: Engine, paths: dict[str, Path], budget_mb: float) -> None:
        self.engine = engine
        self.paths = dict(paths)
        self.budget = budget_mb * 1024 * 1024
        self._cond = threading.Condition()
        self._state = {name: UNLOADED for name in paths}
        self._errors: dict[str, str] = {}
        self._lru: OrderedDict[str, int] = OrderedDict()   # loaded name -> bytes, oldest first
        self._pins: dict[str, int] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pz2-preload")
        self.load_times: dict[str, float] = {}
        self.loads = 0                      # cold loads so far, preloads included
        self.evictions: list[str] = []
        self.on_load: Callable[[str, float], None] | None = None   # (name, seconds) after each load: metrics

    def state(self, name: str) -> str:
        with self._cond:
            s = self._state.get(name, UNLOADED)
            return f"{FAILED}: {self._errors[name]}" if s == FAILED else s

    def used_bytes(self) -> int:
        with self._cond:
            return sum(self._lru.values())

    def snapshot(self) -> dict[str, object]:
        with self._cond:
            return {"specialists": {n: self.state(n) for n in self.paths},
                    "used_mb": round(self.used_bytes() / 2**20, 2), "budget_mb": round(self.budget / 2**20, 2)}

    @contextmanager
    def use(self, name: str) -> Iterator[str]:
        """Hold specialist `name` loaded (pinned) for the duration; yields how it was found: hit, waited or loaded."""
        how = self._ensure(name)
        try:
            yield how
        finally:
            with self._cond:
                self._pins[name] -= 1
                self._cond.notify_all()
            self._evict()

    def would_evict(self, name: str) -> list[str]:
        """The specialists that loading `name` now would push out of the budget, oldest first."""
        with self._cond:
            if self._state.get(name) != UNLOADED:
                return []
            size = self.engine.size_hint(self.paths[name])
            used = sum(self._lru.values())
            victims = []
            for other in self._lru:
                if used + size <= self.budget:
                    break
                if not self._pins.get(other):
                    victims.append(other)
                    used -= self._lru[other]
            return victims

    def preload(self, name: str) -> Future | None:
        """Start loading `name` in the background unless it is loaded, loading or failed."""
        with self._cond:
            if name not in self.paths or self._state[name] != UNLOADED:
                return None
        return self._executor.submit(self._preload, name)

    def _preload(self, name: str) -> None:
        try:
            self._ensure(name, pin=False)
        except SpecialistUnavailable as e:
            logger.warning("preload of %s failed: %s", name, e)

    def _ensure(self, name: str, pin: bool = True) -> str:
        if name not in self.paths:
            raise SpecialistUnavailable(f"no specialist named {name}")
        with self._cond:
            how = "hit"
            while self._state[name] == LOADING:
                how = "waited"
                self._cond.wait()
            if self._state[name] == LOADED:
                self._lru.move_to_end(name)
                if pin:
                    self._pins[name] = self._pins.get(name, 0) + 1
                return how
            self._state[name] = LOADING
        start = time.perf_counter()
        try:
            size = self.engine.load(name, self.paths[name])
        except Exception as e:  # any failure of a load must leave the pool usable
            with self._cond:
                self._state[name] = FAILED
                self._errors[name] = first_line(e)
                self._cond.notify_all()
            raise SpecialistUnavailable(f"{name} specialist unavailable: {self._errors[name]}") from e
        with self._cond:
            self.load_times[name] = time.perf_counter() - start
            self.loads += 1
            self._state[name] = LOADED
            self._errors.pop(name, None)
            self._lru[name] = size
            if pin:
                self._pins[name] = self._pins.get(name, 0) + 1
            self._cond.notify_all()
        if self.on_load is not None:
            self.on_load(name, self.load_times[name])
        self._evict(keep=name)
        return "loaded"

    def _evict(self, keep: str | None = None) -> None:
        """Unload least recently used, unpinned specialists until the loaded ones fit the budget."""
        while True:
            with self._cond:
                if sum(self._lru.values()) <= self.budget:
                    return
                victim = next((n for n in self._lru if n != keep and not self._pins.get(n)), None)
                if victim is None:
                    return  # everything left is in use (or the one just loaded): over budget until released
            if self.unload(victim):  # False if a request pinned it meanwhile: choose again
                self.evictions.append(victim)
                logger.info("evicted %s specialist (least recently used) to stay within %.0f MB", victim, self.budget / 2**20)

    def unload(self, name: str) -> bool:
        """Take an unused specialist out of memory now; False if it is in use or not loaded."""
        with self._cond:
            if self._state.get(name) != LOADED or self._pins.get(name):
                return False
            self._lru.pop(name)
            self._state[name] = LOADING
        self.engine.unload(name)
        with self._cond:
            self._state[name] = UNLOADED
            self._cond.notify_all()
        return True

    def drain(self, timeout: float | None = None) -> None:
        """Wait until the preloads already asked for are done."""
        self._executor.submit(lambda: None).result(timeout=timeout)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
