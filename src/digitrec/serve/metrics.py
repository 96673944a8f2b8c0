"""Prometheus metrics in the text exposition format: request counts, latencies, batch sizes."""

from __future__ import annotations

import threading
from collections import defaultdict

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Histogram:
    """Cumulative-bucket histogram of observed values."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.total, self.count = 0.0, 0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
        self.total += value
        self.count += 1

    def lines(self, name: str, labels: str = "") -> list[str]:
        sep = "," if labels else ""
        rows = [f'{name}_bucket{{{labels}{sep}le="{bound:g}"}} {n}'
                for bound, n in zip(self.buckets, self.counts, strict=True)]
        rows.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.count}')
        suffix = f"{{{labels}}}" if labels else ""
        return [*rows, f"{name}_sum{suffix} {self.total:.6f}", f"{name}_count{suffix} {self.count}"]


class Metrics:
    """What `GET /metrics` reports; safe to update from several threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.latency: dict[str, Histogram] = {}
        self.batches = Histogram(BATCH_BUCKETS)

    def request(self, route: str, status: int, seconds: float) -> None:
        with self.lock:
            self.requests[route, status] += 1
            self.latency.setdefault(route, Histogram(LATENCY_BUCKETS)).observe(seconds)

    def batch(self, size: int) -> None:
        with self.lock:
            self.batches.observe(size)

    def render(self) -> str:
        with self.lock:
            lines = ["# HELP digitrec_requests_total HTTP requests by route and status.",
                     "# TYPE digitrec_requests_total counter"]
            lines += [f'digitrec_requests_total{{route="{route}",status="{status}"}} {n}'
                      for (route, status), n in sorted(self.requests.items())]
            lines += ["# HELP digitrec_errors_total Requests answered with a 4xx or 5xx status.",
                      "# TYPE digitrec_errors_total counter",
                      f"digitrec_errors_total {sum(n for (_, s), n in self.requests.items() if s >= 400)}",
                      "# HELP digitrec_request_seconds Time to answer a request.",
                      "# TYPE digitrec_request_seconds histogram"]
            for route, histogram in sorted(self.latency.items()):
                lines += histogram.lines("digitrec_request_seconds", f'route="{route}"')
            lines += ["# HELP digitrec_batch_size Digits per model call.",
                      "# TYPE digitrec_batch_size histogram",
                      *self.batches.lines("digitrec_batch_size")]
        return "\n".join(lines) + "\n"
