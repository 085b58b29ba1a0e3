"""Prometheus metrics (multiprocess mode when PROMETHEUS_MULTIPROC_DIR is set by `serve`)."""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

PINGS = Counter("pingpost_pings_total", "Pings answered", ["offer", "status"])
PING_SECONDS = Histogram(
    "pingpost_ping_seconds",
    "Ping decision time",
    ["offer"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
BID_REQUESTS = Counter("pingpost_bid_requests_total", "RTB bid requests", ["contract"])
BID_OUTCOMES = Counter("pingpost_bid_outcomes_total", "RTB bid outcomes", ["contract", "outcome"])
BID_SECONDS = Histogram(
    "pingpost_bid_seconds",
    "RTB bid latency",
    ["contract"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DB_STATEMENTS = Counter(
    "pingpost_db_statements_total",
    "Statements sent to PostgreSQL, BEGIN and COMMIT included (pingpost bench: db_statements_per_ping)",
)
DELIVERIES = Counter("pingpost_deliveries_total", "Lead deliveries", ["contract", "outcome"])
VERIFICATIONS = Counter("pingpost_verifications_total", "Verification checks at post", ["type", "result"])


def render() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
