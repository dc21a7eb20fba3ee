"""Logging and metrics, created once for the whole function.

Logs are structured JSON (Powertools Logger): one INFO summary per batch, one
DEBUG line per record, every failure at WARNING or ERROR with its message id,
event id and reason. Metrics are EMF (Powertools Metrics), aggregated per
``event_type`` within a batch: a few metric calls per batch, not per record.
Tracing is left out: Lambda's own active tracing needs no SDK, and the X-Ray
SDK would add ~270 ms to every cold start (docs/decisions.md).
"""

from __future__ import annotations

import enum
from collections import defaultdict
from dataclasses import dataclass, field

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

# Powertools reads POWERTOOLS_SERVICE_NAME and POWERTOOLS_LOG_LEVEL itself.
logger = Logger()

UNRECOGNIZED_TYPE = "unrecognized"


class Outcome(enum.StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    QUARANTINED = "quarantined"
    SKIPPED = "skipped"
    DUPLICATE = "duplicate"

    # Counted once per record: str's C-level hash, not Enum's Python-level one.
    __hash__ = str.__hash__


# Metric name for the count of each outcome.
_COUNT_METRICS = {
    Outcome.SUCCEEDED: "RecordsProcessed",
    Outcome.FAILED: "RecordsFailed",
    Outcome.QUARANTINED: "RecordsQuarantined",
    Outcome.SKIPPED: "RecordsSkippedByDeadline",
    Outcome.DUPLICATE: "RecordsDuplicate",
}


@dataclass(slots=True)
class _TypeStats:
    counts: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(Outcome, 0))
    processing_ms_total: float = 0.0
    processing_ms_max: float = 0.0
    timed: int = 0
    age_ms_max: float = 0.0


class BatchReport:
    """Accumulates one batch's outcomes and timings, per event type."""

    def __init__(self) -> None:
        self._stats: defaultdict[str, _TypeStats] = defaultdict(_TypeStats)

    def add(self, event_type: str, outcome: Outcome, *, age_ms: float, processing_ms: float | None = None) -> None:
        stats = self._stats[event_type]
        stats.counts[outcome] += 1
        stats.age_ms_max = max(stats.age_ms_max, age_ms)
        if processing_ms is not None:
            stats.timed += 1
            stats.processing_ms_total += processing_ms
            stats.processing_ms_max = max(stats.processing_ms_max, processing_ms)

    def count(self, outcome: Outcome) -> int:
        return sum(stats.counts[outcome] for stats in self._stats.values())

    def log_summary(self, records: int) -> None:
        succeeded, failed, quarantined, skipped, duplicate = (self.count(outcome) for outcome in Outcome)
        logger.info(
            "Batch complete: %d succeeded, %d failed, %d quarantined, %d skipped, %d duplicate",
            succeeded,
            failed,
            quarantined,
            skipped,
            duplicate,
            records=records,
            succeeded=succeeded,
            failed=failed,
            quarantined=quarantined,
            skipped=skipped,
            duplicate=duplicate,
        )

    def publish(self, metrics: Metrics) -> None:
        """One EMF document per event type: counts, processing time and message age."""
        for event_type, stats in self._stats.items():
            metrics.add_dimension(name="event_type", value=event_type)
            for outcome, name in _COUNT_METRICS.items():
                # Zero counts are left out (each metric costs a few µs); dashboards FILL them.
                if stats.counts[outcome] or outcome is Outcome.SUCCEEDED:
                    metrics.add_metric(name=name, unit=MetricUnit.Count, value=stats.counts[outcome])
            if stats.timed:
                metrics.add_metric(
                    name="ProcessingTime",
                    unit=MetricUnit.Milliseconds,
                    value=stats.processing_ms_total / stats.timed,
                )
                metrics.add_metric(
                    name="ProcessingTimeMax", unit=MetricUnit.Milliseconds, value=stats.processing_ms_max
                )
            metrics.add_metric(name="MessageAgeMax", unit=MetricUnit.Milliseconds, value=stats.age_ms_max)
            metrics.flush_metrics()


def build_metrics(namespace: str, service: str) -> Metrics:
    return Metrics(namespace=namespace, service=service)
