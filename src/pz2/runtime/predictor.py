"""Which specialist a session will need next, from usage patterns, so it can be loaded ahead.

    P(next = c | session) = w · recent(c) + (1 − w) · T(c | last category)

`recent` is the session's own category history with exponential decay (people stay on a
topic); `T` is the global transition table over all sessions, Laplace-smoothed (what tends to
follow what). A new session has no history and falls back on `T` from the empty state, i.e.
the global frequency of first turns.

With several users at once, loading one session's next specialist can evict what another is
about to use; `demand` is what the other active sessions expect of a specialist, so a preload
is worth an eviction only when it is needed more than what it would evict.
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque

from pz2.config import PoolConfig
from pz2.data.schema import LABELS

START = "<start>"


class UsagePredictor:
    def __init__(self, specialists: tuple[str, ...], cfg: PoolConfig = PoolConfig()) -> None:
        """`cfg`: the weights (`runtime.pool.session_weight`, `decay`, `active_window`)."""
        self.specialists = specialists
        self.session_weight = cfg.session_weight
        self.decay = cfg.decay
        active_window = cfg.active_window
        self._recent: dict[str, dict[str, float]] = defaultdict(dict)
        self._last: dict[str, str] = {}
        self._transitions: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._recent_sessions: deque[str] = deque(maxlen=active_window)  # who spoke in the last turns
        self._lock = threading.RLock()

    def observe(self, session: str, category: str) -> None:
        with self._lock:
            recent = self._recent[session]
            for c in recent:
                recent[c] *= self.decay
            recent[category] = recent.get(category, 0.0) + 1.0
            self._transitions[self._last.get(session, START)][category] += 1
            self._last[session] = category
            self._recent_sessions.append(session)

    def probabilities(self, session: str) -> dict[str, float]:
        with self._lock:
            row = self._transitions[self._last.get(session, START)]
            total = sum(row.values()) + len(LABELS)
            global_p = {c: (row.get(c, 0) + 1) / total for c in LABELS}
            recent = self._recent.get(session)
            if not recent:
                return global_p
            mass = sum(recent.values())
            w = self.session_weight
            return {c: w * recent.get(c, 0.0) / mass + (1 - w) * global_p[c] for c in LABELS}

    def predict(self, session: str) -> tuple[str, float]:
        """The likeliest specialist next turn and its probability."""
        p = self.probabilities(session)
        best = max(self.specialists, key=lambda c: p[c])
        return best, p[best]

    def demand(self, name: str, excluding: str) -> float:
        """The highest probability that another recently active session asks for `name` next."""
        with self._lock:
            others = set(self._recent_sessions) - {excluding}
            return max((self.probabilities(s)[name] for s in others), default=0.0)

    def end(self, session: str) -> None:
        with self._lock:
            self._recent.pop(session, None)
            self._last.pop(session, None)
