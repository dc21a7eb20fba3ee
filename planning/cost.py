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

SQS_CHUNK_BYTES = 64 * 1024
# An idle standard mapping long-polls with 5 pollers, one 20 s receive each: 3 a minute.
IDLE_RECEIVES_PER_MONTH = 5 * 3 * 60 * 730
# What the function logs, about: Lambda's platform lines per invocation, one EMF metrics document
# per event type per batch, one WARNING/ERROR line per failed or quarantined record.
PLATFORM_LOG_BYTES = 350
METRICS_LOG_BYTES = 700
FAILURE_LOG_BYTES = 600
# Custom metrics: the consumer's 7 EMF metrics per event type, plus the memory metric filter.
EMF_METRICS_PER_EVENT_TYPE = 7
METRIC_FILTERS = 1
# The alarms of infra/monitoring.py (README, "Operate").
ALARMS = 8
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
    duration_ms = batch_duration_ms(mapping, workload, records) if full_batches else steady.batch_ms
    received = messages * attempts
    invocations = received / records
    failed = messages * (1 - workload.poison_rate) * (attempts - 1)
    quarantined = messages * workload.poison_rate + messages * (1 - workload.poison_rate) * (
        workload.failure_rate**mapping.max_receive_count
    )
    per_receive = min(MESSAGES_PER_RECEIVE, records)
    sqs = "sqs_fifo_request" if stage.fifo else "sqs_standard_request"
    payload = workload.payload_bytes
    is_offloaded = offloaded(mapping.max_message_bytes, workload)
    body = POINTER_BODY_BYTES if is_offloaded else payload
    gb_seconds = invocations * math.ceil(duration_ms) / 1000 * mapping.memory_mb / 1024
    lines = [
        CostLine("Lambda", "requests (one per batch)", invocations, "lambda_request", prices.get("lambda_request")),
        CostLine(
            "Lambda",
            f"duration, arm64 {mapping.memory_mb} MB, {math.ceil(duration_ms)} ms a batch",
            gb_seconds,
            "lambda_arm64_gb_second",
            prices.get("lambda_arm64_gb_second"),
        ),
        CostLine(
            "SQS",
            "producer sends (SendMessageBatch of 10)",
            messages / 10 * _chunks(10 * body),
            sqs,
            prices.get(sqs),
        ),
        CostLine(
            "SQS",
            f"mapping receives ({per_receive:.1f} messages each)",
            received / per_receive * _chunks(per_receive * body),
            sqs,
            prices.get(sqs),
        ),
        CostLine("SQS", "deletes (DeleteMessageBatch)", messages / per_receive, sqs, prices.get(sqs)),
    ]
    if failed and stage.retry_backoff_base_seconds > 0:
        lines.append(
            CostLine(
                "SQS", "retry backoff (ChangeMessageVisibilityBatch)", min(failed, invocations), sqs, prices.get(sqs)
            )
        )
    if quarantined:
        lines.append(
            CostLine(
                "SQS",
                "quarantine sends to the DLQ (SendMessageBatch)",
                min(quarantined, invocations),
                sqs,
                prices.get(sqs),
            )
        )
    if mapping.mode == "standard":
        lines.append(CostLine("SQS", "idle long polls of the mapping", IDLE_RECEIVES_PER_MONTH, sqs, prices.get(sqs)))
    else:
        assert stage.provisioned_pollers is not None
        lines.append(
            CostLine(
                "Lambda",
                "provisioned pollers (event poller units, at the minimum)",
                stage.provisioned_pollers.minimum * 730,
                "lambda_event_poller_unit_hour",
                None,
            )
        )
    if stage.idempotency:
        processed = messages * (1 - workload.poison_rate) * attempts
        lines.append(
            CostLine(
                "DynamoDB",
                "idempotency writes (claim x2 transactional, settle)",
                processed * (CLAIM_WRITE_UNITS + SETTLE_WRITE_UNITS),
                "dynamodb_write_request_unit",
                prices.get("dynamodb_write_request_unit"),
            )
        )
        if workload.duplicate_rate:
            lines.append(
                CostLine(
                    "DynamoDB",
                    "idempotency reads (duplicates)",
                    messages * workload.duplicate_rate,
                    "dynamodb_read_request_unit",
                    prices.get("dynamodb_read_request_unit"),
                )
            )
    if is_offloaded:
        lifetime_seconds = stage.retention_period_seconds + stage.dlq_retention_period_seconds
        stored_gb = messages / SECONDS_PER_MONTH * lifetime_seconds * payload / GB
        lines += [
            CostLine("S3", "payload objects written (PUT)", messages, "s3_put_request", prices.get("s3_put_request")),
            CostLine("S3", "payload objects read (GET)", received, "s3_get_request", prices.get("s3_get_request")),
            CostLine(
                "S3",
                "payload storage until expiry",
                stored_gb,
                "s3_standard_gb_month",
                prices.get("s3_standard_gb_month"),
            ),
        ]
    log_bytes = invocations * (PLATFORM_LOG_BYTES + METRICS_LOG_BYTES) + (failed + quarantined) * FAILURE_LOG_BYTES
    lines += [
        CostLine(
            "CloudWatch",
            "logs ingested (GB)",
            log_bytes / GB,
            "cloudwatch_logs_ingested_gb",
            prices.get("cloudwatch_logs_ingested_gb"),
        ),
        CostLine(
            "CloudWatch",
            f"custom metrics ({event_types} event types)",
            event_types * EMF_METRICS_PER_EVENT_TYPE + METRIC_FILTERS,
            "cloudwatch_metric_month",
            prices.get("cloudwatch_metric_month"),
        ),
        CostLine(
            "CloudWatch",
            "alarms",
            ALARMS,
            "cloudwatch_standard_alarm_month",
            prices.get("cloudwatch_standard_alarm_month"),
        ),
    ]
    return lines


def total(lines: list[CostLine]) -> float:
    return sum(line.monthly or 0.0 for line in lines)
