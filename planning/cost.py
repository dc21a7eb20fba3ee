"""The monthly bill, line by line, from a plan and the unit prices of prices.toml."""

from __future__ import annotations

import math
from dataclasses import dataclass

from infra.settings import StackSettings
from planning.model import (
    MESSAGES_PER_RECEIVE,
    POINTER_BODY_BYTES,
    Mapping,
    attempts_per_message,
    batch_duration_ms,
    full_batch,
    offloaded,
)
from planning.planner import SteadyState
from planning.prices import PriceSheet
from planning.workload import SECONDS_PER_MONTH, Workload
from sqs_consumer.routes import REGISTRY

SQS_CHUNK_BYTES = 64 * 1024
# An idle standard mapping long-polls with 5 pollers, one 20 s receive each: 3 a minute.
IDLE_RECEIVES_PER_MONTH = 5 * 3 * 60 * 730
# What the function logs, about: Lambda's platform lines per invocation, one EMF metrics document
# per event type per batch, one WARNING/ERROR line per failed or quarantined record.
PLATFORM_LOG_BYTES = 350
METRICS_LOG_BYTES = 600
# A metrics document holds two value arrays (handler time, age) of a value per record, 100 at most.
METRICS_VALUE_BYTES = 9
METRICS_VALUES = 100
FAILURE_LOG_BYTES = 600
# Custom metrics: the consumer's 7 EMF metrics per event type (5 counts, 2 value arrays), plus the
# memory metric filter.
EMF_METRICS_PER_EVENT_TYPE = 7
METRIC_FILTERS = 1
# The alarms of infra/monitoring.py per consumer (with the breakers' DependencyBreakerOpen, on with
# idempotency), and one per service level a route declares (its slo_p99_ms, its slo_max_age_s);
# tests/infra/test_stack.py counts them.
BASE_ALARMS = 10
ALARMS = BASE_ALARMS + sum(
    (route.slo_p99_ms is not None) + (route.slo_max_age_s is not None) for route in REGISTRY.routes.values()
)
# Idempotency per processed record: a transactional claim (2 write units) and a completion or
# release (1); a duplicate's claim is refused and the stored record read once (1 read unit).
CLAIM_WRITE_UNITS = 2
SETTLE_WRITE_UNITS = 1
GB = 1024**3


@dataclass(frozen=True)
class CostLine:
    service: str
    item: str
    quantity: float
    price_name: str
    unit_price: float | None

    @property
    def monthly(self) -> float | None:
        return None if self.unit_price is None else self.quantity * self.unit_price


def _chunks(payload_bytes: float) -> int:
    return max(1, math.ceil(payload_bytes / SQS_CHUNK_BYTES))


@dataclass(frozen=True)
class _Month:
    """What a month of the workload amounts to, from which each line is priced."""

    stage: StackSettings
    mapping: Mapping
    workload: Workload
    prices: PriceSheet
    messages: float
    received: float
    invocations: float
    duration_ms: float
    failed: float
    quarantined: float
    per_receive: float
    attempts: float

    @property
    def sqs_price(self) -> str:
        return "sqs_fifo_request" if self.stage.fifo else "sqs_standard_request"

    @property
    def offloaded(self) -> bool:
        return offloaded(self.mapping.max_message_bytes, self.workload)

    @property
    def body_bytes(self) -> float:
        return POINTER_BODY_BYTES if self.offloaded else self.workload.payload_bytes

    def line(self, service: str, item: str, quantity: float, price_name: str, *, priced: bool = True) -> CostLine:
        """One line at the unit price of ``price_name`` (None where no source prices it)."""
        return CostLine(service, item, quantity, price_name, self.prices.get(price_name) if priced else None)


def monthly_cost(
    stage: StackSettings,
    mapping: Mapping,
    workload: Workload,
    steady: SteadyState,
    prices: PriceSheet,
    *,
    event_types: int = 2,
    full_batches: bool = False,
) -> list[CostLine]:
    """Every line of a month at the workload's mean rate (730 hours), bursts included.

    ``full_batches`` bills every batch as full, as docs/cost.md does; otherwise batches hold what
    the planner expects at the mean rate (without a window, few records at low rates).
    """
    messages = workload.monthly_messages
    attempts = attempts_per_message(mapping, workload)
    records = float(full_batch(mapping, workload)) if full_batches else steady.records_per_batch
    received = messages * attempts
    month = _Month(
        stage=stage,
        mapping=mapping,
        workload=workload,
        prices=prices,
        messages=messages,
        received=received,
        invocations=received / records,
        duration_ms=batch_duration_ms(mapping, workload, records) if full_batches else steady.batch_ms,
        failed=messages * (1 - workload.poison_rate) * (attempts - 1),
        quarantined=messages * workload.poison_rate
        + messages * (1 - workload.poison_rate) * (workload.failure_rate**mapping.max_receive_count),
        per_receive=min(MESSAGES_PER_RECEIVE, records),
        attempts=attempts,
    )
    return [
        *_lambda_and_sqs(month),
        *_idempotency(month),
        *_payloads(month),
        *_cloudwatch(month, event_types),
    ]


def _lambda_and_sqs(month: _Month) -> list[CostLine]:
    mapping, sqs, body, per_receive = month.mapping, month.sqs_price, month.body_bytes, month.per_receive
    gb_seconds = month.invocations * math.ceil(month.duration_ms) / 1000 * mapping.memory_mb / 1024
    lines = [
        month.line("Lambda", "requests (one per batch)", month.invocations, "lambda_request"),
        month.line(
            "Lambda",
            f"duration, arm64 {mapping.memory_mb} MB, {math.ceil(month.duration_ms)} ms a batch",
            gb_seconds,
            "lambda_arm64_gb_second",
        ),
        month.line("SQS", "producer sends (SendMessageBatch of 10)", month.messages / 10 * _chunks(10 * body), sqs),
        month.line(
            "SQS",
            f"mapping receives ({per_receive:.1f} messages each)",
            month.received / per_receive * _chunks(per_receive * body),
            sqs,
        ),
        month.line("SQS", "deletes (DeleteMessageBatch)", month.messages / per_receive, sqs),
    ]
    if month.failed and month.stage.retry_backoff_base_seconds > 0:
        retries = min(month.failed, month.invocations)
        lines.append(month.line("SQS", "retry backoff (ChangeMessageVisibilityBatch)", retries, sqs))
    if month.quarantined:
        sends = min(month.quarantined, month.invocations)
        lines.append(month.line("SQS", "quarantine sends to the DLQ (SendMessageBatch)", sends, sqs))
    if mapping.mode == "standard":
        lines.append(month.line("SQS", "idle long polls of the mapping", IDLE_RECEIVES_PER_MONTH, sqs))
    else:
        assert month.stage.provisioned_pollers is not None
        units = month.stage.provisioned_pollers.minimum * 730
        lines.append(month.line("Lambda", "provisioned pollers (event poller units, at the minimum)", units,
                                "lambda_event_poller_unit_hour", priced=False))  # fmt: skip
    return lines


def _idempotency(month: _Month) -> list[CostLine]:
    if not month.stage.idempotency:
        return []
    workload = month.workload
    processed = month.messages * (1 - workload.poison_rate) * month.attempts
    lines = [
        month.line(
            "DynamoDB",
            "idempotency writes (claim x2 transactional, settle)",
            processed * (CLAIM_WRITE_UNITS + SETTLE_WRITE_UNITS),
            "dynamodb_write_request_unit",
        ),
    ]
    if workload.duplicate_rate:
        lines.append(month.line("DynamoDB", "idempotency reads (duplicates)", month.messages * workload.duplicate_rate,
                                "dynamodb_read_request_unit"))  # fmt: skip
    return lines


def _payloads(month: _Month) -> list[CostLine]:
    if not month.offloaded:
        return []
    # A payload stays in the bucket until the lifecycle rule deletes it, read or not (infra/payload_bucket.py).
    lifetime_seconds = month.stage.payload_expiration_days * 86_400
    stored_gb = month.messages / SECONDS_PER_MONTH * lifetime_seconds * month.workload.payload_bytes / GB
    return [
        month.line("S3", "payload objects written (PUT)", month.messages, "s3_put_request"),
        month.line("S3", "payload objects read (GET)", month.received, "s3_get_request"),
        month.line("S3", "payload storage until expiry", stored_gb, "s3_standard_gb_month"),
    ]


def _cloudwatch(month: _Month, event_types: int) -> list[CostLine]:
    failures = month.failed + month.quarantined
    values = min(METRICS_VALUES, month.received / month.invocations) if month.invocations else 0
    metrics_bytes = METRICS_LOG_BYTES + 2 * METRICS_VALUE_BYTES * values
    log_bytes = month.invocations * (PLATFORM_LOG_BYTES + metrics_bytes) + failures * FAILURE_LOG_BYTES
    metrics = event_types * EMF_METRICS_PER_EVENT_TYPE + METRIC_FILTERS
    return [
        month.line("CloudWatch", "logs ingested (GB)", log_bytes / GB, "cloudwatch_logs_ingested_gb"),
        month.line("CloudWatch", f"custom metrics ({event_types} event types)", metrics, "cloudwatch_metric_month"),
        month.line("CloudWatch", "alarms", ALARMS, "cloudwatch_standard_alarm_month"),
    ]


def total(lines: list[CostLine]) -> float:
    return sum(line.monthly or 0.0 for line in lines)
