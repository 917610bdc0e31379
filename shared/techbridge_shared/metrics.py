"""Prometheus metrics every process exports at /metrics (labelled by service)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "techbridge_http_requests_total", "HTTP requests served", ["service", "method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "techbridge_http_request_duration_seconds",
    "HTTP request latency",
    ["service", "method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OUTBOX_BACKLOG = Gauge("techbridge_outbox_backlog", "Outbox rows not yet published", ["service"])
OUTBOX_OLDEST_AGE = Gauge(
    "techbridge_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox row", ["service"]
)
OUTBOX_PUBLISHED = Counter(
    "techbridge_outbox_published_total", "Outbox rows published to Kafka", ["service"]
)
OUTBOX_PUBLISH_FAILURES = Counter(
    "techbridge_outbox_publish_failures_total", "Failed outbox publish rounds", ["service"]
)
CONSUMED = Counter(
    "techbridge_consumer_records_total",
    "Records handled by consumers, by outcome (applied, duplicate, ignored, dead_lettered)",
    ["service", "group", "outcome"],
)
HANDLER_FAILURES = Counter(
    "techbridge_consumer_handler_failures_total", "Failed handler attempts", ["service", "group"]
)
CONSUMER_LAG = Gauge(
    "techbridge_consumer_lag", "Records behind the high-water mark", ["service", "group", "topic", "partition"]
)
DLQ_RECORDS = Counter(
    "techbridge_dlq_records_total", "Records sent to a dead-letter topic", ["service", "group", "topic"]
)
