"""What the assistant remembers of each conversation between turns, bounded for the life of a server.

A session holds the last question (what "네, 전문가 모드로 해주세요" refers back to) and a pending expert-mode
offer. A server meets a new session id per user, so the store forgets: a session idle for
`runtime.session_idle_minutes` and, past `runtime.max_sessions`, the least recently active one. Forgetting a
session also ends it in the usage predictor (`on_end`), whose per-session history would otherwise grow too.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from pz2.runtime.language import OFFER_TEXT
from pz2.runtime.prediction import Prediction


@dataclass
class Session:
    last: tuple[str, Prediction] | None = None      # the last question answered, and its prediction
    offer: tuple[str, Prediction] | None = None     # the question expert mode was offered for, until answered
    last_turn: str | None = None                    # their turns' ids (None over the stateless API): what an
    offer_turn: str | None = None                   # expert request or a declined offer says something of


def recall(history: tuple[dict[str, str], ...], classify: Callable[[str], Prediction]) -> tuple[Session, int]:
    """What a session would remember of a conversation sent whole (the API is stateless): its last
    question, offered expert mode if the reply ends with the offer; and how many messages precede
    that question, so a re-asked question is answered without its first answer in the prompt."""
    users = [i for i, m in enumerate(history) if m["role"] == "user"]
    if not users:
        return Session(), 0
    question = history[users[-1]]["content"]
    last = (question, classify(question))
    offered = any(m["role"] == "assistant" and m["content"].rstrip().endswith(tuple(OFFER_TEXT.values()))
                  for m in history[users[-1] + 1:])
    return Session(last=last, offer=last if offered else None), users[-1]


class Sessions:
    def __init__(self, idle_s: float, limit: int, on_end: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_s, self.limit = idle_s, limit
        self._on_end = on_end
        self._clock = clock
        self._sessions: OrderedDict[str, tuple[Session, float]] = OrderedDict()   # least recently active first
        self._lock = threading.Lock()

    def get(self, name: str) -> Session:
        """The session's memory (new if unknown or forgotten); asking for it counts as activity."""
        now = self._clock()
        with self._lock:
            session = self._sessions.pop(name, (Session(), now))[0]
            self._sessions[name] = (session, now)
            ended = self._forget(now)
        for gone in ended:
            self._on_end(gone)
        return session

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def _forget(self, now: float) -> list[str]:
        ended = []
        while self._sessions:
            name, (_, seen) = next(iter(self._sessions.items()))
            if len(self._sessions) <= self.limit and now - seen <= self.idle_s:
                break
            del self._sessions[name]
            ended.append(name)
        return ended
