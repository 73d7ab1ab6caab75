"""Prometheus metrics, on a registry owned by one app instance (nothing global)."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from bot.errors import DatabaseUnavailable
from storage.db import Database
from storage.outbox import pending_count

log = logging.getLogger("countersign.metrics")


class Metrics:
    """Every metric Countersign exports."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.webhooks_received = Counter(
            "countersign_webhooks_received", "DialNexa webhook deliveries received", registry=r
        )
        self.webhooks = Counter(
            "countersign_webhooks",
            "DialNexa webhook deliveries by outcome",
            ["outcome"],  # accepted, duplicate, updated, conflict, ignored
            registry=r,
        )
        self.webhooks_rejected = Counter(
            "countersign_webhooks_rejected",
            "DialNexa webhook deliveries refused, by reason",
            ["reason"],  # signature, too_large, not_json, shape, db_unavailable
            registry=r,
        )
        self.ingest_latency = Histogram(
            "countersign_ingest_latency_seconds",
            "Time from a webhook's arrival to its answer",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.outbox_done = Counter(
            "countersign_outbox_done", "Outbox items finished, by kind", ["kind"], registry=r
        )
        self.outbox_failures = Counter(
            "countersign_outbox_failures",
            "Outbox attempts that failed, by kind and whether they will be retried",
            ["kind", "final"],
            registry=r,
        )
        self.outbox_pending = Gauge(
            "countersign_outbox_pending", "Outbox items waiting", registry=r
        )
        self.clicks_undecided = Gauge(
            "countersign_clicks_undecided",
            "Clicks answered to Slack and not yet decided, in this process",
            registry=r,
        )
        self.click_decision_latency = Histogram(
            "countersign_click_decision_seconds",
            "Time from storing a click (and answering Slack) to its decision",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )


async def refresh_outbox_gauge(metrics: Metrics, db: Database) -> None:
    """Read how many outbox rows wait; a database that does not answer leaves the last value."""
    try:
        metrics.outbox_pending.set(await pending_count(db))
    except DatabaseUnavailable:
        log.warning("metrics: the database did not answer; outbox_pending is not current")
