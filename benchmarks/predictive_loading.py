"""Predictive loading on a simulated traffic trace: hit rate and load latency saved.

Trace: interleaved sessions (several users at once), each a sticky Markov chain over categories
(people stay on a topic, with asides of small talk); a qna/technical turn needs its specialist
with probability `--escalate`. The pool is the real one, on the real llama.cpp engine with the
trained specialist adapters, with a budget that holds one specialist, so users compete for it.

Baseline, same trace, same process: load on demand only (LRU). Candidate: after every turn the
usage predictor picks the session's likely next specialist and preloads it; the preload finishes
before the next turn arrives (users read and type for seconds; a load takes milliseconds).
A hit is a specialist request that finds its adapter loaded; a miss pays a cold load, whose time
is measured on every miss.

    python benchmarks/predictive_loading.py [--sessions 40] [--turns 12] [--concurrent 1 4]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from pathlib import Path

from pz2.config import ModelConfig
from pz2.fileio import atomic_write_json
from pz2.runtime.engine import Engine, build_engine
from pz2.runtime.pool import SpecialistPool
from pz2.runtime.predictor import UsagePredictor
from pz2.runtime.router import SPECIALISTS

PATHS = {"qna": Path("finetuning/models/qna_specialist"), "technical": Path("finetuning/models/technical_specialist")}
CATEGORIES = ("qna", "technical", "general")


def trace(sessions: int, turns: int, stay: float, escalate: float, concurrent: int, seed: int) -> list[tuple[str, str, bool]]:
    """(session, category, needs specialist) in arrival order, `concurrent` sessions interleaved at a time."""
    rng = random.Random(seed)
    per_session = []
    for s in range(sessions):
        topic = rng.choice(SPECIALISTS)
        category, turns_of = topic, []
        for _ in range(turns):
            turns_of.append((f"user{s}", category, category != "general" and rng.random() < escalate))
            if rng.random() > stay:
                category = rng.choice(CATEGORIES) if category == topic else topic  # an aside, then back
        per_session.append(turns_of)
    out = []
    for start in range(0, sessions, concurrent):
        group = [list(t) for t in per_session[start : start + concurrent]]
        while any(group):
            live = [g for g in group if g]
            out.append(rng.choice(live).pop(0))
    return out


def replay(engine: Engine, events: list[tuple[str, str, bool]], budget_mb: float, predict: bool,
           min_probability: float) -> dict[str, float]:
    pool = SpecialistPool(engine, PATHS, budget_mb)
    predictor = UsagePredictor(SPECIALISTS)
    hits = misses = 0
    for session, category, needed in events:
        if needed:
            with pool.use(category) as how:
                hits += how == "hit"
                misses += how != "hit"
        predictor.observe(session, category)
        if predict:  # the assistant's policy (Assistant._predict_next)
            name, p = predictor.predict(session)
            if p >= min_probability and all(predictor.demand(v, session) < p for v in pool.would_evict(name)):
                pool.preload(name)
                pool.drain()
    for name in list(engine.loaded()):
        engine.unload(name)
    pool.close()
    requests = hits + misses
    return {"requests": requests, "hits": hits, "misses": misses, "hit_rate": hits / requests if requests else 0.0,
            "evictions": len(pool.evictions)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=40)
    parser.add_argument("--turns", type=int, default=12)
    parser.add_argument("--concurrent", type=int, nargs="+", default=[1, 4],
                        help="Users at once; one trace per value (one user alone, then users competing).")
    parser.add_argument("--stay", type=float, default=0.8, help="Probability a session stays on its category.")
    parser.add_argument("--escalate", type=float, default=0.5, help="Share of qna/technical turns that need the specialist.")
    parser.add_argument("--min-probability", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/predictive_loading.json"))
    args = parser.parse_args()
    if not all(p.exists() for p in PATHS.values()):
        print("train the specialists first (pz2 demo)", file=sys.stderr)
        return 1
    cfg = ModelConfig(runtime={"engine": {"threads": 2, "max_new_tokens": 8}})
    engine = build_engine(cfg, Path("finetuning/models/unified_model/adapter"))   # the specialists' own model
    sizes = [engine.lora_gguf(p).stat().st_size / 2**20 for p in PATHS.values()]
    budget = 1.5 * max(sizes)  # one specialist at a time

    loads = []
    for _ in range(10):  # cold load time of one adapter, measured with the same pool code
        pool = SpecialistPool(engine, PATHS, budget)
        with pool.use("qna"):
            pass
        loads.append(pool.load_times["qna"])
        engine.unload("qna")
    cold_ms = 1000 * statistics.median(loads)

    result: dict[str, object] = {"budget_mb": budget, "cold_load_ms": cold_ms, "traces": {}}
    print(f"budget {budget:.1f} MB (one specialist), cold load {cold_ms:.1f} ms")
    for concurrent in args.concurrent:
        events = trace(args.sessions, args.turns, args.stay, args.escalate, concurrent, args.seed)
        on_demand = replay(engine, events, budget, False, args.min_probability)
        predictive = replay(engine, events, budget, True, args.min_probability)
        saved = (on_demand["misses"] - predictive["misses"]) * cold_ms
        per_request = saved / max(1, predictive["requests"])
        result["traces"][f"{concurrent}_at_once"] = {
            "turns": len(events), "on_demand": on_demand, "predictive": predictive, "latency_saved_ms_total": saved,
            "latency_saved_ms_per_request": per_request}
        print(f"{concurrent} user(s) at once, {len(events)} turns, {predictive['requests']} specialist requests")
        print(f"  on demand only : hit rate {on_demand['hit_rate']:.1%} ({on_demand['misses']} cold loads)")
        print(f"  with prediction: hit rate {predictive['hit_rate']:.1%} ({predictive['misses']} cold loads)")
        print(f"  latency saved  : {saved:.0f} ms in all, {per_request:.2f} ms per specialist request")
    atomic_write_json(args.out, result)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
