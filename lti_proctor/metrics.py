"""Prometheus metrics: the tool's series, the one-line calls that record them, and /metrics' body.

Bottom floor: it imports nothing of ours, so any layer may record through it with one call at its
edge. Under gunicorn the shipped config sets PROMETHEUS_MULTIPROC_DIR before the workers start, so
every worker writes its samples to shared files and render() sums them. Gauges that describe the
database (outbox depth, oldest job age, dead jobs) are not kept in process: the scrape reads them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
# A launch waits for the proctoring service (~300 ms); a webhook ack should take milliseconds.
_LAUNCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0)
_FAST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

LAUNCHES = Counter(
    "lti_proctor_launches",
    "LTI launches answered, by outcome (ok, refused, failed) and reason code ('' when ok).",
    ["outcome", "reason"],
)
LAUNCH_SECONDS = Histogram(
    "lti_proctor_launch_seconds",
    "Time to answer the launch POST, proctoring-service call included.",
    buckets=_LAUNCH_BUCKETS,
)
WEBHOOK_SECONDS = Histogram(
    "lti_proctor_webhook_seconds",
    "Time to acknowledge a proctoring-service webhook, by event and HTTP status.",
    ["event", "status"],
    buckets=_FAST_BUCKETS,
)
SERVICE_CALL_SECONDS = Histogram(
    "lti_proctor_service_call_seconds",
    "Time of one HTTP call to the proctoring service, by operation (each try counts).",
    ["operation"],
    buckets=_LAUNCH_BUCKETS,
)
SERVICE_CALL_ERRORS = Counter(
    "lti_proctor_service_call_errors",
    "Proctoring-service calls that failed, by operation and kind (unavailable, rejected).",
    ["operation", "kind"],
)
AGS_ANSWERS = Counter(
    "lti_proctor_ags_answers",
    "Answers of LMS gradebook (AGS) requests, by HTTP status ('none' when no answer came).",
    ["status"],
)
TOKEN_REQUESTS = Counter(
    "lti_proctor_token_requests",
    "Access-token requests to LMS token endpoints, by HTTP status ('none' when no answer came).",
    ["status"],
)


# -- recording: one call at each edge ------------------------------------------------------------


def record_launch(*, status: int, reason: str | None, seconds: float) -> None:
    """Count an answered launch POST and its latency."""
    outcome = "ok" if status < 400 else "refused" if status < 500 else "failed"
    LAUNCHES.labels(outcome=outcome, reason=reason or "").inc()
    LAUNCH_SECONDS.observe(seconds)


def record_webhook(*, event: str, status: int, seconds: float) -> None:
    """Observe the time a webhook took to be acknowledged."""
    WEBHOOK_SECONDS.labels(event=event, status=str(status)).observe(seconds)


def record_service_call(*, operation: str, seconds: float, error: str | None = None) -> None:
    """Observe one proctoring-service call; error names its kind when it failed."""
    SERVICE_CALL_SECONDS.labels(operation=operation).observe(seconds)
    if error is not None:
        SERVICE_CALL_ERRORS.labels(operation=operation, kind=error).inc()


def record_ags_answer(status: int | None) -> None:
    """Count an AGS answer by status (None: the LMS did not answer)."""
    AGS_ANSWERS.labels(status="none" if status is None else str(status)).inc()


def record_token_request(status: int | None) -> None:
    """Count an access-token request by status (None: the token endpoint did not answer)."""
    TOKEN_REQUESTS.labels(status="none" if status is None else str(status)).inc()


# -- the outbox, read from the database at scrape time --------------------------------------------


@dataclass(frozen=True)
class OutboxGauge:
    """Jobs of one kind and status, and how long the oldest due one has waited (todo only)."""

    kind: str
    status: str
    count: int
    oldest_due_age_s: float | None = None


class _OutboxCollector(Collector):
    def __init__(self, gauges: Iterable[OutboxGauge]) -> None:
        self._gauges = list(gauges)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        jobs = GaugeMetricFamily(
            "lti_proctor_outbox_jobs",
            "Outbox jobs by kind and status (todo is the depth; failed are dead).",
            labels=["kind", "status"],
        )
        dead = GaugeMetricFamily(
            "lti_proctor_outbox_dead_jobs",
            "Dead (failed) outbox jobs by kind, waiting for an admin.",
            labels=["kind"],
        )
        oldest = GaugeMetricFamily(
            "lti_proctor_outbox_oldest_job_age_seconds",
            "How long the oldest due todo job of each kind has waited.",
            labels=["kind"],
        )
        for gauge in self._gauges:
            jobs.add_metric([gauge.kind, gauge.status], gauge.count)
            if gauge.status == "failed":
                dead.add_metric([gauge.kind], gauge.count)
            if gauge.oldest_due_age_s is not None:
                oldest.add_metric([gauge.kind], gauge.oldest_due_age_s)
        yield from (jobs, dead, oldest)


def render(outbox: Iterable[OutboxGauge]) -> bytes:
    """The Prometheus text exposition: this process's (or all workers') series plus the outbox."""
    if os.environ.get(MULTIPROC_ENV):
        process_registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(process_registry)  # type: ignore[no-untyped-call]
        body = generate_latest(process_registry)
    else:
        body = generate_latest(REGISTRY)
    outbox_registry = CollectorRegistry(auto_describe=False)
    outbox_registry.register(_OutboxCollector(outbox))
    return body + generate_latest(outbox_registry)


def mark_process_dead(pid: int) -> None:
    """Drop a dead gunicorn worker's live-gauge files (multiprocess mode only)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
