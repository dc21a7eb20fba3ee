"""Logging and metrics, created once for the whole function.

Logs are structured JSON (Powertools Logger): one INFO summary per batch, one
DEBUG line per record, every failure at WARNING or ERROR with its message id,
event id, trace id and reason. Metrics are EMF (Powertools Metrics), one document
per ``event_type`` within a batch: its counts, and each record's handler time and
age as value arrays, from which CloudWatch computes percentiles per type
(docs/decisions/072-percentiles-per-event-type.md).
Tracing is left out: Lambda's own active tracing needs no SDK, and the X-Ray
SDK would add ~270 ms to every cold start (docs/decisions/009-no-tracer.md).
"""

from __future__ import annotations

import enum
import functools
import json
import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.utilities.typing import LambdaContext

EventT = TypeVar("EventT")
ResultT = TypeVar("ResultT")

# Powertools reads POWERTOOLS_SERVICE_NAME and POWERTOOLS_LOG_LEVEL itself.
logger = Logger()

UNRECOGNIZED_TYPE = "unrecognized"


def inject_lambda_context(
    handler: Callable[[EventT, LambdaContext], ResultT],
) -> Callable[[EventT, LambdaContext], ResultT]:
    """Powertools' ``logger.inject_lambda_context(clear_state=True)``: the same keys on every line, cheaper.

    Each invocation clears the keys of the one before and sets the Lambda context's, exactly
    as that decorator does (tests/unit/test_observability.py compares their lines). It builds
    no context model, reads no environment variable per invocation and looks the formatter up
    once rather than three times: Powertools' own costs ~9 µs per invocation, two records'
    worth of work in a batch of ten (docs/decisions/013-invocation-log-keys.md).
    """
    # Powertools counts a provisioned-concurrency environment as never cold.
    cold_start = os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") != "provisioned-concurrency"

    @functools.wraps(handler)
    def decorate(event: EventT, context: LambdaContext) -> ResultT:
        nonlocal cold_start
        cold, cold_start = cold_start, False
        formatter = logger.registered_formatter
        formatter.clear_state()
        formatter.thread_safe_clear_keys()
        formatter.append_keys(
            service=logger.service,
            sampling_rate=logger.sampling_rate,
            cold_start=cold,
            function_name=context.function_name,
            function_memory_size=context.memory_limit_in_mb,
            function_arn=context.invoked_function_arn,
            function_request_id=context.aws_request_id,
        )
        if logger.sampling_rate and not cold:
            logger.refresh_sample_rate_calculation()
        return handler(event, context)

    return decorate


_COUNT = MetricUnit.Count.value
_MILLISECONDS = MetricUnit.Milliseconds.value


class Outcome(enum.StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    QUARANTINED = "quarantined"
    SKIPPED = "skipped"
    DUPLICATE = "duplicate"

    # Counted once per record: str's C-level hash, not Enum's Python-level one.
    __hash__ = str.__hash__


_ZERO_COUNTS = dict.fromkeys(Outcome, 0)

# Metric name for the count of each outcome.
_COUNT_METRICS = {
    Outcome.SUCCEEDED: "RecordsProcessed",
    Outcome.FAILED: "RecordsFailed",
    Outcome.QUARANTINED: "RecordsQuarantined",
    Outcome.SKIPPED: "RecordsSkippedByDeadline",
    Outcome.DUPLICATE: "RecordsDuplicate",
}
# The unit of each metric: the counts, and milliseconds for the others (timings, age).
_UNITS = dict.fromkeys(_COUNT_METRICS.values(), _COUNT)
# Each record's handler time, and its age when its batch started: value arrays, one value a record.
PROCESSING_TIME = "ProcessingTime"
MESSAGE_AGE = "MessageAge"
# The EMF specification: a metric's value array holds at most 100 values, a directive at most 100
# metrics, a dimension set at most 30 dimensions (CloudWatch_Embedded_Metric_Format_Specification).
EMF_MAX_VALUES = 100
EMF_MAX_METRICS = 100
EMF_MAX_DIMENSIONS = 30
# Per tenant (pipeline/tenants.py): its records in the batch, and its oldest message's age at the batch's start.
_TENANT_METRICS = {"TenantRecords": 0.0, "TenantMessageAgeMax": 0.0}
_UNITS["TenantRecords"] = _COUNT
# Tenants whose document shape is kept: past this many, the cache starts again (tenants come and go).
_TENANT_SHAPES_KEPT = 1_000


@dataclass(slots=True)
class _TypeStats:
    counts: dict[Outcome, int] = field(default_factory=_ZERO_COUNTS.copy)
    processing_ms: list[float] = field(default_factory=list)
    age_ms: list[float] = field(default_factory=list)


class BatchReport:
    """Accumulates one batch's outcomes and timings, per event type."""

    def __init__(self) -> None:
        self._stats: defaultdict[str, _TypeStats] = defaultdict(_TypeStats)

    def add(self, event_type: str, outcome: Outcome, *, age_ms: float, processing_ms: float | None = None) -> None:
        # Called once per record: one lookup of the type's stats, appends only.
        stats = self._stats[event_type]
        stats.counts[outcome] += 1
        # A sender's clock ahead of ours makes a negative age: counted as 0.
        stats.age_ms.append(age_ms if age_ms > 0 else 0.0)
        if processing_ms is not None:
            stats.processing_ms.append(processing_ms)

    def count(self, outcome: Outcome) -> int:
        return sum(stats.counts[outcome] for stats in self._stats.values())

    def log_summary(self, records: int) -> None:
        """One line per batch: at INFO when a record did not succeed, at DEBUG when all did.

        A batch that all succeeded is already counted by its EMF document (itself a log line
        in the same group); a second line for it would double the log volume and cost as
        much CPU as validating the whole batch.
        """
        all_succeeded = self.count(Outcome.SUCCEEDED) == records
        if all_succeeded and logger.log_level > logging.DEBUG:
            return
        succeeded, failed, quarantined, skipped, duplicate = (self.count(outcome) for outcome in Outcome)
        (logger.debug if all_succeeded else logger.info)(
            f"Batch complete: {succeeded} succeeded, {failed} failed, {quarantined} quarantined, "
            f"{skipped} skipped, {duplicate} duplicate",
            records=records,
            succeeded=succeeded,
            failed=failed,
            quarantined=quarantined,
            skipped=skipped,
            duplicate=duplicate,
        )

    def publish(self, documents: EmfDocuments) -> None:
        """One EMF document per event type: counts, and each record's processing time and age."""
        for event_type, stats in self._stats.items():
            values: dict[str, float | list[float]] = {}
            for outcome, name in _COUNT_METRICS.items():
                # Zero counts are left out (each metric costs a few µs); dashboards FILL them.
                if stats.counts[outcome] or outcome is Outcome.SUCCEEDED:
                    values[name] = stats.counts[outcome]
            if stats.processing_ms:
                values[PROCESSING_TIME] = within_emf(stats.processing_ms)
            values[MESSAGE_AGE] = within_emf(stats.age_ms)
            documents.write(event_type, values)


def within_emf(values: list[float]) -> list[float]:
    """``values`` as one EMF value array: all of them up to ``EMF_MAX_VALUES``; beyond, that many of
    their order statistics, evenly spaced from the least to the greatest (both kept exactly), so each
    stands for an equal share of the batch and the batch's percentiles, mean and max survive
    (docs/decisions/072-percentiles-per-event-type.md)."""
    count = len(values)
    if count <= EMF_MAX_VALUES:
        return values
    ordered = sorted(values)
    step = (count - 1) / (EMF_MAX_VALUES - 1)
    return [ordered[round(index * step)] for index in range(EMF_MAX_VALUES)]


class EmfDocuments:
    """Writes the batch's EMF documents, their shape serialized by Powertools once per event type.

    A document's directive (namespace, dimension names, metric names and units) and its
    dimension values depend only on the event type and which metrics it carries. So
    ``Metrics.serialize_metric_set`` builds them on first use, they are kept as JSON text,
    and each batch adds its timestamp and values: serializing the whole document again
    cost as much as validating the batch's records. The values are finite floats, written
    as ``json.dumps`` writes them (``float.__repr__``).
    """

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._shapes: dict[tuple[str, tuple[str, ...]], tuple[str, str, tuple[str, ...]]] = {}
        self._tenant_shapes: dict[str, tuple[str, str, tuple[str, ...]]] = {}

    def write(self, event_type: str, values: dict[str, float | list[float]]) -> None:
        key = (event_type, tuple(values))
        shape = self._shapes.get(key)
        if shape is None:
            shape = self._shapes[key] = self._shape(event_type, values)
        head, dimensions, names = shape
        fields = "".join([f"{name}[{_array(value)}]" for name, value in zip(names, values.values(), strict=True)])
        # EMF goes to stdout, where Lambda sends it to CloudWatch Logs (as flush_metrics does).
        print(f"{head}{int(time.time() * 1000)}}},{dimensions}{fields}}}", flush=True)  # noqa: T201

    def write_tenants(self, tenants: list[tuple[str, int, float]]) -> None:
        """One document per tenant (``tenant`` dimension): its records in the batch and its oldest message's
        age at the batch's start; all in one write. Shapes are kept for the tenants last seen only."""
        if not tenants:
            return
        if len(self._tenant_shapes) > _TENANT_SHAPES_KEPT:
            self._tenant_shapes.clear()
        timestamp = int(time.time() * 1000)
        lines = []
        for tenant, records, oldest_ms in tenants:
            shape = self._tenant_shapes.get(tenant)
            if shape is None:
                shape = self._tenant_shapes[tenant] = self._shape(("tenant", tenant), _TENANT_METRICS)
            head, dimensions, names = shape
            lines.append(f"{head}{timestamp}}},{dimensions}{names[0]}[{float(records)!r}]{names[1]}[{oldest_ms!r}]}}")
        print("\n".join(lines), flush=True)  # noqa: T201

    def _shape(
        self, dimension: tuple[str, str] | str, values: Mapping[str, float | list[float]]
    ) -> tuple[str, str, tuple[str, ...]]:
        """The JSON text before the timestamp, the dimensions', and each metric's up to its value."""
        metrics = self._metrics
        base = {"service": metrics.service} if metrics.service else {}
        key, label = dimension if isinstance(dimension, tuple) else ("event_type", dimension)
        document: dict[str, Any] = dict(metrics.serialize_metric_set(
            metrics={
                name: {"Unit": _UNITS.get(name, _MILLISECONDS), "StorageResolution": 60, "Value": [0.0]}
                for name in values
            },
            dimensions={**base, key: label},
            metadata={},
        ))  # fmt: skip
        directives = document.pop("_aws")["CloudWatchMetrics"]
        for name in values:
            del document[name]
        head = '{"_aws":{"CloudWatchMetrics":' + _dumps(directives) + ',"Timestamp":'
        return head, _dumps(document)[1:-1], tuple("," + _dumps(name) + ":" for name in values)


def _array(value: float | list[float]) -> str:
    """A count as ``json.dumps`` writes a float; a value array's milliseconds to the microsecond, written
    by one %-format of them all (three times faster than a ``repr`` each, which cost more than the rest
    of a small batch's metrics)."""
    if isinstance(value, list):
        return _format_of(len(value)) % tuple(value)
    return repr(float(value))


@functools.cache
def _format_of(count: int) -> str:
    return ",".join(["%.3f"] * count)


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def build_metrics(namespace: str, service: str) -> Metrics | None:
    """The function's metrics; None when Powertools' own switch (POWERTOOLS_METRICS_DISABLED) turns them off."""
    if is_metrics_disabled():
        return None
    return Metrics(namespace=namespace, service=service)


def write_breaker_metrics(namespace: str, service: str, dependency: str, values: dict[str, float]) -> None:
    """One EMF document of a dependency's breaker: under the service alone (what the stage's alarm
    watches, whatever dependencies the code declares) and per dependency (what the dashboard shows)."""
    units = {name: "Seconds" if name.endswith("Seconds") else _COUNT for name in values}
    document = {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [["service"], ["service", "dependency"]],
                    "Metrics": [{"Name": name, "Unit": unit} for name, unit in units.items()],
                }
            ],
        },
        "service": service,
        "dependency": dependency,
        **{name: float(value) for name, value in values.items()},
    }
    print(_dumps(document), flush=True)  # noqa: T201  # EMF goes to stdout
