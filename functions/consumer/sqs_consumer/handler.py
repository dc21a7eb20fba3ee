"""Lambda entry point: wires settings, the registry and the DLQ, then delegates.

Nothing heavy happens at import: settings are read and the consumer built on
the first invocation, and botocore's clients when first needed (clients.py).

Under SnapStart (``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start``) the init phase is
snapshotted once per published version, so it does what the first invocation would:
settings, the consumer, the parser, botocore and the service models of its clients.
Nothing made then must break on restore: no client, connection or credentials are
created at init, and the retry jitter draws from the OS (retry.py).
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from sqs_consumer import secrets
from sqs_consumer.clients import preload_service_models
from sqs_consumer.followups import SqsFollowUpSender
from sqs_consumer.idempotency.dynamodb import DynamoDBIdempotency, DynamoDBStore
from sqs_consumer.observability import build_metrics, inject_lambda_context, logger
from sqs_consumer.payload_store import S3Payloads, function_memory_mb, max_payload_for
from sqs_consumer.pipeline import BatchConsumer
from sqs_consumer.quarantine import SqsQuarantine
from sqs_consumer.registry import EventRegistry
from sqs_consumer.retry import Backoff, SqsVisibility
from sqs_consumer.routes import REGISTRY
from sqs_consumer.settings import ConsumerSettings, get_settings
from sqs_consumer.tracing import SegmentEmitter, daemon_address


def build_consumer(settings: ConsumerSettings, registry: EventRegistry = REGISTRY) -> BatchConsumer:
    logger.setLevel(settings.log_level)
    secrets.configure(settings.secret_names, settings.secrets_max_age_seconds)
    return BatchConsumer(
        registry,
        SqsQuarantine(
            settings.dlq_url, max_message_bytes=settings.dlq_max_message_bytes, endpoint_url=settings.aws_endpoint_url
        ),
        metrics=build_metrics(settings.metrics_namespace, settings.service_name),
        time_reserve_ms=settings.time_reserve_ms,
        max_concurrent_records=settings.max_concurrent_records,
        max_receive_count=settings.max_receive_count,
        backoff=Backoff(settings.retry_backoff_base_seconds, settings.retry_backoff_cap_seconds),
        visibility=SqsVisibility(endpoint_url=settings.aws_endpoint_url),
        idempotency=_idempotency(settings),
        payloads=_payloads(settings),
        followups=(
            SqsFollowUpSender(settings.followup_queues, endpoint_url=settings.aws_endpoint_url)
            if settings.followup_queues
            else None
        ),
        tracing=_tracing(settings),
    )


def _payloads(settings: ConsumerSettings) -> S3Payloads:
    """Payloads within MAX_PAYLOAD_BYTES and within what the function's memory can parse, whichever is less
    (the stack refuses a bound over the latter; a function whose memory was changed by hand keeps to it).
    Lambda always says its memory; a process that does not (a test, a script) is not bounded by it."""
    if "AWS_LAMBDA_FUNCTION_MEMORY_SIZE" not in os.environ:
        return S3Payloads(settings.max_payload_bytes, endpoint_url=settings.aws_endpoint_url)
    memory_mb = function_memory_mb()
    return S3Payloads(min(settings.max_payload_bytes, max_payload_for(memory_mb)), memory_mb=memory_mb,
                      endpoint_url=settings.aws_endpoint_url)  # fmt: skip


def _tracing(settings: ConsumerSettings) -> SegmentEmitter | None:
    return SegmentEmitter(daemon_address(settings.xray_daemon_address)) if settings.tracing else None


def _idempotency(settings: ConsumerSettings) -> DynamoDBIdempotency | None:
    table, ttl = settings.idempotency_table, settings.idempotency_ttl_seconds
    if table is None:
        return None
    return DynamoDBIdempotency(lambda: DynamoDBStore(table, ttl))


@cache
def _consumer() -> BatchConsumer:
    return build_consumer(get_settings())


def _prepare_snapshot() -> None:
    """What the first invocation would do, minus anything that must not outlive a restore."""
    consumer = _consumer()
    _ = REGISTRY.adapter  # the parser's validator, built from the models
    # botocore and the service models its clients are made from (read from disk, no credentials).
    services = ["sqs", "dynamodb"] if consumer.uses_idempotency else ["sqs"]
    if get_settings().payload_bucket is not None:  # the stage expects offloaded payloads: S3's model too
        services.append("s3")
    preload_service_models(services)


if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start":
    _prepare_snapshot()


@inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return _consumer().handle(event, context)
