"""What the consumer function is given to run: its handler and its environment, made from the stage's
settings. Plain values, apart from the construct that deploys them (infra/consumer_function.py), so that
the benchmarks and the local tools use them without loading the CDK."""

from __future__ import annotations

import json

from infra.settings import StackSettings
from sqs_consumer.settings import ConsumerSettings

HANDLER = "sqs_consumer.handler.lambda_handler"


def function_environment(
    settings: StackSettings, dlq_url: str, table_name: str | None, payload_bucket: str | None = None
) -> dict[str, str]:
    """The variables ``ConsumerSettings`` reads, named by the function's own settings class."""
    values = {
        "service_name": settings.service_name,
        "metrics_namespace": settings.metrics_namespace,
        "log_level": settings.log_level,
        "dlq_url": dlq_url,
        "time_reserve_ms": str(int(settings.time_reserve_seconds * 1000)),
        "max_concurrent_records": str(settings.max_concurrent_records),
        "max_receive_count": str(settings.max_receive_count),
        "dlq_max_message_bytes": str(settings.dlq_max_message_size_bytes),
        "retry_backoff_base_seconds": f"{settings.retry_backoff_base_seconds:g}",
        "retry_backoff_cap_seconds": f"{settings.retry_backoff_cap_seconds:g}",
        "max_payload_bytes": str(settings.max_payload_size_bytes),
    }
    if settings.secrets:
        values["secret_names"] = json.dumps(settings.secrets, sort_keys=True)
        values["secrets_max_age_seconds"] = str(settings.secrets_max_age_seconds)
    if payload_bucket is not None:
        values["payload_bucket"] = payload_bucket
    if table_name is not None:
        values["idempotency_table"] = table_name
        values["idempotency_ttl_seconds"] = str(settings.idempotency_ttl_seconds)
    return {ConsumerSettings.env_name(field): value for field, value in values.items()}
