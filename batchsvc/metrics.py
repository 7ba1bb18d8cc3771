"""Prometheus metrics, in a registry each app owns.

A registry per app, never prometheus_client's global one: tests build many apps in one process,
and each must count only its own traffic. Business code does not touch these: the HTTP
middleware, the storage wrapper (`batchsvc.metered_storage`) and the handlers' one call to
`batch_finished` are the only writers.
"""

from __future__ import annotations

from typing import Literal, TypeVar, cast

from attrs import define, field
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from batchsvc import __version__
from batchsvc.batch.results import BatchResult
from batchsvc.errors import ErrorCode
from batchsvc.request.operations import OPERATION_TYPES

BatchOutcome = Literal["success", "partial", "atomic_failed", "validate_only", "error"]
StorageOutcome = Literal["ok", "error"]

# Methods outside this set are folded into "other": a client may send any token as a method,
# and a label must not take values the client chooses.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Storage calls on the in-memory backend take microseconds; the default buckets start at 5 ms.
STORAGE_BUCKETS = (
    *(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
    *(0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
# An operation on the in-memory backend takes a few microseconds; one against a remote store,
# milliseconds to seconds: buckets from 10 us to 10 s resolve both.
OPERATION_BUCKETS = (0.00001, 0.000025, 0.00005, *STORAGE_BUCKETS)

# Batches take from a millisecond (100 in-memory operations) to the 5-minute deadline cap.
BATCH_DURATION_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
)
# Why an operation was skipped, from its error code: a bounded label.
SKIP_REASONS = {ErrorCode.SKIPPED: "after_failure", ErrorCode.TIMEOUT: "deadline"}

LabelledMetric = TypeVar("LabelledMetric", Counter, Histogram)


def _new_registry() -> CollectorRegistry:
    return CollectorRegistry(auto_describe=True)


# eq=False: two registries are never "equal"; a Metrics is identified by the app owning it.
@define(eq=False)
class Metrics:
    """The service's metrics and the registry that exposes them."""

    registry: CollectorRegistry = field(factory=_new_registry)
    #: The configured backend's name (`storage.backend`), a label of the operation latency.
    backend: str = "unknown"
    #: The configured embedder's name (`embedder.name`), for `batchsvc_build_info`.
    embedder: str = "unknown"
    http_requests: Counter = field(init=False)
    http_duration: Histogram = field(init=False)
    batches: Counter = field(init=False)
    batch_operations: Histogram = field(init=False)
    operations: Counter = field(init=False)
    operation_duration: Histogram = field(init=False)
    storage_duration: Histogram = field(init=False)
    batch_duration: Histogram = field(init=False)
    batches_in_flight: Gauge = field(init=False)
    retries: Counter = field(init=False)
    skipped: Counter = field(init=False)
    rate_limited: Counter = field(init=False)
    build_info: Gauge = field(init=False)
    # `labels()` costs about 2 us a call, several times the observation itself, and storage
    # calls and operations are counted per operation; every label is bounded, so is this.
    _children: dict[tuple[Counter | Histogram, tuple[str, ...]], Counter | Histogram] = field(
        init=False, factory=dict
    )

    def __attrs_post_init__(self) -> None:
        registry = self.registry
        self.http_requests = Counter(
            "batchsvc_http_requests_total",
            "HTTP requests answered, by method, matched route and final status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.http_duration = Histogram(
            "batchsvc_http_request_duration_seconds",
            "Time from a request's arrival to its response, by method and matched route.",
            ["method", "route"],
            registry=registry,
        )
        self.batches = Counter(
            "batchsvc_batches_total",
            "Batches run through POST /api/v1/batch, by outcome "
            "(success, partial, atomic_failed, validate_only, error).",
            ["outcome"],
            registry=registry,
        )
        self.batch_operations = Histogram(
            "batchsvc_batch_operations",
            "Operations per batch run through POST /api/v1/batch.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        self.operations = Counter(
            "batchsvc_operations_total",
            "Operations run (batches and single-memory endpoints, not validate_only), "
            "by type (invalid when unknown) and result status.",
            ["type", "status"],
            registry=registry,
        )
        self.operation_duration = Histogram(
            "batchsvc_operation_duration_seconds",
            "Time each operation ran, from its turn to its result (its share of a bulk storage "
            "call), by type, backend and result status; operations not run are not observed.",
            ["type", "backend", "status"],
            buckets=OPERATION_BUCKETS,
            registry=registry,
        )
        self.storage_duration = Histogram(
            "batchsvc_storage_call_duration_seconds",
            "Storage backend calls, by method and outcome (error: the call raised).",
            ["method", "outcome"],
            buckets=STORAGE_BUCKETS,
            registry=registry,
        )

        self._add_operator_metrics(registry)

    def _add_operator_metrics(self, registry: CollectorRegistry) -> None:
        """What operators watch beyond counts: batch duration and concurrency, retries, skips,
        rate-limit refusals and the build (issue 11)."""
        self.batch_duration = Histogram(
            "batchsvc_batch_duration_seconds",
            "Time from a batch request's arrival to its result, POST /api/v1/batch only.",
            buckets=BATCH_DURATION_BUCKETS,
            registry=registry,
        )
        self.batches_in_flight = Gauge(
            "batchsvc_batches_in_flight",
            "Batches being executed now (POST /api/v1/batch).",
            registry=registry,
        )
        self.retries = Counter(
            "batchsvc_operation_retries_total",
            "Attempts after an operation's first (transient storage faults, time-outs), by type.",
            ["type"],
            registry=registry,
        )
        self.skipped = Counter(
            "batchsvc_operations_skipped_total",
            "Operations not run, by reason: after_failure (the batch stopped at a failure) or "
            "deadline (its timeout passed first).",
            ["reason"],
            registry=registry,
        )
        self.rate_limited = Counter(
            "batchsvc_rate_limited_requests_total",
            "Requests refused with 429 by the rate limiter, by policy (batch or api).",
            ["policy"],
            registry=registry,
        )
        self.build_info = Gauge(
            "batchsvc_build_info",
            "Always 1; the labels say which version runs with which backend and embedder.",
            ["version", "backend", "embedder"],
            registry=registry,
        )
        self.build_info.labels(__version__, self.backend, self.embedder).set(1)

    def _child(self, metric: LabelledMetric, *values: str) -> LabelledMetric:
        key = (metric, values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return cast(LabelledMetric, child)

    def request_finished(self, method: str, route: str, status: int, seconds: float) -> None:
        """One answered request; `route` is the matched route's canonical path or `unmatched`."""
        method = method if method in KNOWN_METHODS else "other"
        self._child(self.http_requests, method, route, str(status)).inc()
        self._child(self.http_duration, method, route).observe(seconds)

    def batch_finished(
        self,
        result: BatchResult,
        *,
        validate_only: bool,
        single: bool = False,
        seconds: float | None = None,
    ) -> None:
        """The executor's outcome, reported by the handler that ran it.

        `single` marks the single-memory endpoints: their operation is counted, but it is not a
        batch a client sent, so it stays out of the batch counts. A validate_only batch changed
        nothing, so its operations stay out of the operation counts (its batch is counted).
        """
        if not single:
            self._child(self.batches, batch_outcome(result, validate_only)).inc()
            self.batch_operations.observe(len(result.operations))
            if seconds is not None:
                self.batch_duration.observe(seconds)
        if validate_only:
            return
        for op in result.operations:
            kind = op.type if op.type in OPERATION_TYPES else "invalid"
            self._child(self.operations, kind, op.status).inc()
            if op.seconds is not None:
                duration = self._child(self.operation_duration, kind, self.backend, op.status)
                duration.observe(op.seconds)
            if op.attempts > 1:
                self._child(self.retries, kind).inc(op.attempts - 1)
            if op.status == "skipped" and op.error is not None:
                reason = SKIP_REASONS.get(op.error.code, "other")
                self._child(self.skipped, reason).inc()

    def batch_errored(self, operations: int) -> None:
        """A batch that ran and failed as a whole, with no result per operation (an atomic
        batch whose commit failed: a 503)."""
        self._child(self.batches, "error").inc()
        self.batch_operations.observe(operations)

    def request_rate_limited(self, policy: Literal["batch", "api"]) -> None:
        self._child(self.rate_limited, policy).inc()

    def storage_call(self, method: str, outcome: StorageOutcome, seconds: float) -> None:
        self._child(self.storage_duration, method, outcome).observe(seconds)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format (`prometheus_client.CONTENT_TYPE_LATEST`)."""
        return generate_latest(self.registry)


def batch_outcome(result: BatchResult, validate_only: bool) -> BatchOutcome:
    if validate_only:
        return "validate_only"
    if result.atomic_failed_index is not None:
        return "atomic_failed"
    return "success" if result.all_succeeded else "partial"
