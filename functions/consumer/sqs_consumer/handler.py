"""Lambda entry point: wires settings, the registry and the DLQ, then delegates.

Nothing heavy happens at import: settings are read and the consumer built on
the first invocation, and boto3 only when a message must be quarantined.

Under SnapStart (``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start``) the init phase is
snapshotted once per published version, so it does what the first invocation would:
settings, the consumer, the parser, and the imports of the store and SQS clients.
Nothing made then must break on restore: no client, connection or credentials are
created at init, and the retry jitter draws from the OS (retry.py).
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from sqs_consumer.idempotency import PowertoolsIdempotency, dynamodb_persistence
from sqs_consumer.observability import build_metrics, logger
from sqs_consumer.processing import BatchConsumer
from sqs_consumer.quarantine import SqsQuarantine
from sqs_consumer.registry import EventRegistry
from sqs_consumer.retry import Backoff, SqsVisibility
from sqs_consumer.routes import REGISTRY
from sqs_consumer.settings import ConsumerSettings, get_settings


def build_consumer(settings: ConsumerSettings, registry: EventRegistry = REGISTRY) -> BatchConsumer:
    logger.setLevel(settings.log_level)
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
    )


def _idempotency(settings: ConsumerSettings) -> PowertoolsIdempotency | None:
    table, ttl = settings.idempotency_table, settings.idempotency_ttl_seconds
    if table is None:
        return None
    return PowertoolsIdempotency(lambda: dynamodb_persistence(table, ttl))


@cache
def _consumer() -> BatchConsumer:
    return build_consumer(get_settings())


def _prepare_snapshot() -> None:
    """What the first invocation would do, minus anything that must not outlive a restore."""
    consumer = _consumer()
    _ = REGISTRY.adapter  # the parser's validator, built from the models
    if consumer.uses_idempotency:
        import aws_lambda_powertools.utilities.idempotency  # noqa: F401, PLC0415
    import boto3  # noqa: F401, PLC0415  # the quarantine's and the backoff's SQS client, made on first use


if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start":
    _prepare_snapshot()


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return _consumer().handle(event, context)
