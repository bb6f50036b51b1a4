"""The Prometheus series of `pz2 serve`, named as Prometheus asks: prefix `pz2_`, base units
(seconds, bytes), `_total` on counters. Each app has its own registry, so several servers (or
tests) in one process keep separate counts."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# seconds: from a cached short answer on llama.cpp (tens of ms) to a long specialist answer
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("pz2_requests", "Chat completion requests, by model asked for and HTTP status.",
                                ["model", "status"], registry=r)
        self.first_token = Histogram("pz2_time_to_first_token_seconds", "Request in to first answer text out.",
                                     ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.latency = Histogram("pz2_e2e_request_latency_seconds", "Request in to last byte of the answer.",
                                 ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.routes = Counter("pz2_route_decisions", "Router decisions, by route and reason.", ["route", "reason"],
                              registry=r)
        self.prompt_tokens = Counter("pz2_prompt_tokens", "Prompt tokens of answered requests.", ["model"], registry=r)
        self.generation_tokens = Counter("pz2_generation_tokens", "Answer tokens generated.", ["model"], registry=r)
        self.adapter_loads = Counter("pz2_adapter_loads", "Specialist loads into memory (preloads included).",
                                     ["adapter"], registry=r)
        self.adapter_load_seconds = Histogram("pz2_adapter_load_seconds", "Time to load one specialist.",
                                              ["adapter"], buckets=LATENCY_BUCKETS, registry=r)
        self.pool_memory = Gauge("pz2_pool_memory_bytes", "Memory the loaded specialists take.", registry=r)
        self.pool_budget = Gauge("pz2_pool_memory_budget_bytes", "The specialist pool's memory budget.", registry=r)
        self.running = Gauge("pz2_requests_running", "Requests generating now.", registry=r)
        self.waiting = Gauge("pz2_requests_waiting", "Requests queued for a slot.", registry=r)

    def watch(self, running: Callable[[], float], waiting: Callable[[], float], pool_bytes: Callable[[], float],
              budget_bytes: float) -> None:
        """Gauges read at scrape time from the scheduler and the pool."""
        self.running.set_function(running)
        self.waiting.set_function(waiting)
        self.pool_memory.set_function(pool_bytes)
        self.pool_budget.set(budget_bytes)

    def adapter_loaded(self, adapter: str, seconds: float) -> None:
        self.adapter_loads.labels(adapter).inc()
        self.adapter_load_seconds.labels(adapter).observe(seconds)
