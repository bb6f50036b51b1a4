"""Feedback that trains the router: what people say of answers, and what they do after one.

A rating names a turn by its id (the decision record's `id`; the API's response id is `chatcmpl-<id>`).
Explicit ratings come from the web chat's 👍/👎, the terminal's `/good` `/bad` and `POST /v1/feedback`.
Implicit ones come from what a person does next: accepting an expert-mode offer or asking for expert
mode right after an answer says that answer was not good enough; declining an offer says it was.
Each goes to `logs/assistant/feedback.jsonl` (runtime/append_log.py), and serves twice:

- `labelled_answers`: the unified answers people judged, with the features the router computed for
  them, for `pz2 train confidence --feedback` to refit on (runtime/confidence_fit.py);
- `preference_pairs`: (prompt, chosen, rejected) for TRL's DPO trainer, from questions answered twice,
  one answer rejected and the other kept.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Literal, get_args

logger = logging.getLogger(__name__)

FEEDBACK_FILE, DECISIONS_FILE = "feedback.jsonl", "decisions.jsonl"
Rating = Literal["good", "bad"]
RATINGS: tuple[str, ...] = get_args(Rating)
Explicit = Literal["command", "api"]   # the terminal's /good /bad; the API (the web chat's 👍 👎 too)
Implicit = Literal["offer_accepted", "offer_declined", "expert_request"]
EXPLICIT: tuple[str, ...] = get_args(Explicit)
IMPLICIT: tuple[str, ...] = get_args(Implicit)


@dataclass(frozen=True)
class Feedback:
    turn: str               # the rated turn's id
    rating: Rating
    how: Explicit | Implicit
    comment: str | None = None

    @property
    def implicit(self) -> bool:
        return self.how in IMPLICIT

    def record(self) -> dict:
        return asdict(self) | {"implicit": self.implicit}

    @classmethod
    def from_record(cls, record: dict) -> Feedback | None:
        """The event of a log line; None (with a warning) for one that is not a rating."""
        try:
            event = cls(record["turn"], record["rating"], record["how"], record.get("comment"))
        except (KeyError, TypeError):
            event = None
        if event is None or event.rating not in RATINGS or event.how not in EXPLICIT + IMPLICIT:
            logger.warning("feedback record skipped, not a rating: %.120s", record)
            return None
        return event


def verdicts(events: list[Feedback]) -> dict[str, Feedback]:
    """Each rated turn's verdict: the last explicit rating, else the last implicit one (a person who
    accepted an offer and then rated the first answer 👍 meant the 👍)."""
    out: dict[str, Feedback] = {}
    for event in events:
        if not (event.implicit and event.turn in out and not out[event.turn].implicit):
            out[event.turn] = event
    return out


def labelled_answers(decisions: list[dict], events: list[Feedback]) -> list[tuple[dict, Feedback]]:
    """(decision record, verdict) of every unified answer a person judged and the router scored: the turn
    showed the unified answer (no specialist answered it) and its record carries the confidence features."""
    records = {r["id"]: r for r in decisions if "id" in r}
    out = []
    for turn, verdict in verdicts(events).items():
        record = records.get(turn)
        if record and record.get("features") and record.get("specialist") is None and record.get("unified_answer"):
            out.append((record, verdict))
    return out


def preference_pairs(decisions: list[dict], events: list[Feedback]) -> list[dict]:
    """TRL's conversational preference rows, {prompt, chosen, rejected} as message lists, one per pair of
    answers to one question where a person rejected one and kept the other.

    A question's answers are its turn's and those of the turns that answered it again (`follows`: an
    accepted offer, an expert request). Rejected: rated bad (explicitly, or by asking for expert mode
    after it). Kept: rated good, or the last answer of a question whose earlier one was rejected, when
    the person asked nothing more of it."""
    by_id = {r["id"]: r for r in decisions if "id" in r}
    judged = verdicts(events)
    threads: dict[str, list[dict]] = {}
    for record in decisions:
        if "id" not in record:
            continue
        root = record["id"]
        while by_id.get(root, {}).get("follows") in by_id:
            root = by_id[root]["follows"]
        threads.setdefault(root, []).append(record)
    pairs = []
    for root, turns in threads.items():
        rated = [(t["answer"], judged[t["id"]].rating if t["id"] in judged else None) for t in turns if t.get("answer")]
        rejected = [text for text, rating in rated if rating == "bad"]
        kept = [text for text, rating in rated if rating == "good"]
        if rejected and rated[-1][1] is None:
            kept.append(rated[-1][0])
        question = by_id[root]["question"]
        pairs += [{"prompt": [{"role": "user", "content": question}],
                   "chosen": [{"role": "assistant", "content": good}],
                   "rejected": [{"role": "assistant", "content": bad}]}
                  for good in dict.fromkeys(kept) for bad in dict.fromkeys(rejected) if good != bad]
    return pairs
