"""Prometheus metrics (prometheus_client): request counts, latencies, batch sizes.

With several workers (`digitrec serve --workers N`) the supervisor sets
$PROMETHEUS_MULTIPROC_DIR: every worker writes its values there and `/metrics` adds up all of
them, so a scrape sees the whole service whichever worker answers it. In one process the
metrics live in the app's own registry (several apps in one process do not collide).
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """What `GET /metrics` reports; safe to update from several threads."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # prometheus_client reads the variable when first imported: it is set before the
        # workers start
        shared = bool(os.environ.get(MULTIPROC_ENV))
        if shared:  # values go to the shared directory; the collector reads every worker's
            MultiProcessCollector(self.registry)
        own = None if shared else self.registry
        self.requests = Counter("digitrec_requests", "HTTP requests by route and status.",
                                ["route", "status"], registry=own)
        self.errors = Counter("digitrec_errors", "Requests answered with a 4xx or 5xx status.",
                              registry=own)
        self.latency = Histogram("digitrec_request_seconds", "Time to answer a request.",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=own)
        self.batches = Histogram("digitrec_batch_size", "Digits per model call.",
                                 buckets=BATCH_BUCKETS, registry=own)

    def request(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        if status >= 400:
            self.errors.inc()
        self.latency.labels(route).observe(seconds)

    def batch(self, size: int) -> None:
        self.batches.observe(size)

    def render(self) -> bytes:
        """The text exposition of every metric (of every worker, with several)."""
        return generate_latest(self.registry)
