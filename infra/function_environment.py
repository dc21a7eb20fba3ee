"""What the consumer function is given to run: its handler and its environment, made from the stage's
settings. Plain values, apart from the construct that deploys them (infra/consumer_function.py), so that
the benchmarks and the local tools use them without loading the CDK."""

from __future__ import annotations

import json
from typing import Protocol

from infra.settings import StackSettings
from sqs_consumer.settings import ConsumerSettings, OrdersApiSettings

HANDLER = "sqs_consumer.handler.lambda_handler"


class BreakerNames(Protocol):
    """What the function needs of the breakers' controls (infra/breaker_controls.py): where its probes go."""

    @property
    def group_name(self) -> str: ...

    @property
    def scheduler_role_name(self) -> str: ...


def function_environment(
    settings: StackSettings,
    dlq_url: str,
    table_name: str | None,
    payload_bucket: str | None = None,
    breakers: BreakerNames | None = None,
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
    if settings.tracing:
        values["tracing"] = "true"
    if settings.secrets:
        values["secret_names"] = json.dumps(settings.secrets, sort_keys=True)
        values["secrets_max_age_seconds"] = str(settings.secrets_max_age_seconds)
    if payload_bucket is not None:
        values["payload_bucket"] = payload_bucket
    if table_name is not None:
        values["idempotency_table"] = table_name
        values["idempotency_ttl_seconds"] = str(settings.idempotency_ttl_seconds)
    if breakers is not None:
        values.update(_breaker_environment(settings, breakers))
    if settings.dependency_rate_limits and table_name is not None:
        limits = {name: limit.model_dump(exclude_none=True) for name, limit in settings.dependency_rate_limits.items()}
        values["dependency_rate_limits"] = json.dumps(limits, sort_keys=True)
    environment = {ConsumerSettings.env_name(field): value for field, value in values.items()}
    if settings.orders_api_url is not None:
        environment[OrdersApiSettings.env_name()] = settings.orders_api_url
    return environment


def _breaker_environment(settings: StackSettings, breakers: BreakerNames) -> dict[str, str]:
    values = {
        "breakers_enabled": "true",
        "breaker_threshold": str(settings.breaker_threshold),
        "breaker_window_seconds": f"{settings.breaker_window_seconds:g}",
        "breaker_cool_down_seconds": f"{settings.breaker_cool_down_seconds:g}",
        "breaker_cool_down_cap_seconds": f"{settings.breaker_cool_down_cap_seconds:g}",
        "probe_schedule_group": breakers.group_name,
        "probe_role_name": breakers.scheduler_role_name[-64:],
    }
    if settings.mapping_max_concurrency is not None:
        values["mapping_max_concurrency"] = str(settings.mapping_max_concurrency)
    return values
