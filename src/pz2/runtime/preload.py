"""Preloading: after each turn, load the specialist the session will likely need next, when the
prediction is sure enough and what loading it would evict is needed less by the other sessions."""

from __future__ import annotations

from pz2.config import PoolConfig
from pz2.runtime.pool import SpecialistPool
from pz2.runtime.predictor import UsagePredictor


class Preloader:
    def __init__(self, pool: SpecialistPool, predictor: UsagePredictor, cfg: PoolConfig) -> None:
        self.pool, self.predictor, self.cfg = pool, predictor, cfg

    def observe(self, session: str, category: str) -> None:
        """The category a session's turn had; preloads what it predicts next (`runtime.pool.preload`)."""
        self.predictor.observe(session, category)
        if not self.cfg.preload:
            return
        name, p = self.predictor.predict(session)
        if p < self.cfg.preload_min_probability:
            return
        victims = self.pool.would_evict(name)
        if all(self.predictor.demand(v, excluding=session) < p for v in victims):
            self.pool.preload(name)
