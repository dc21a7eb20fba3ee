"""Lambda entry point: wires settings, the registry and the DLQ, then delegates.

Nothing heavy happens at import: settings are read and the consumer built on
the first invocation, and botocore's clients when first needed (clients.py). The
import runs without the cyclic garbage collector, and what it made is frozen at
its end (collector.py).

Under SnapStart (``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start``) the init phase is
snapshotted once per published version, so it does what the first invocation would:
settings, the consumer, the parser, botocore and the service models of its clients.
Nothing made then must break on restore: no client, connection or credentials are
created at init, and the retry jitter draws from the OS (retry.py).
"""

from __future__ import annotations

import sqs_consumer.init_pause  # noqa: F401  # first: the imports below load without collections (collector.py)

# isort: split
import os
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from sqs_consumer import secrets
from sqs_consumer.clients import dynamodb_client, preload_service_models
from sqs_consumer.collector import load_and_freeze, resume_after_init
from sqs_consumer.dependencies import PROBE_KEY
from sqs_consumer.followups import SqsFollowUpSender
from sqs_consumer.idempotency.dynamodb import DynamoDBIdempotency, DynamoDBStore
from sqs_consumer.observability import build_metrics, inject_lambda_context, logger
from sqs_consumer.payload_store import S3Payloads, function_memory_mb, max_payload_for
from sqs_consumer.pipeline import BatchConsumer
from sqs_consumer.quarantine import SqsQuarantine
from sqs_consumer.registry import EventRegistry
from sqs_consumer.resend import SqsResender
from sqs_consumer.retry import Backoff, SqsVisibility
from sqs_consumer.routes import REGISTRY
from sqs_consumer.settings import ConsumerSettings, get_settings
from sqs_consumer.tracing import SegmentEmitter, daemon_address

if TYPE_CHECKING:
    from sqs_consumer.dependencies.board import BreakerBoard
    from sqs_consumer.dependencies.rate import RateLimiter, TokenStore
    from sqs_consumer.dependencies.store import BreakerStore


def build_consumer(
    settings: ConsumerSettings, registry: EventRegistry = REGISTRY, board: BreakerBoard | None = None
) -> BatchConsumer:
    logger.setLevel(settings.log_level)
    secrets.configure(settings.secret_names, settings.secrets_max_age_seconds)
    breakers = None
    if board is not None and registry.dependencies:
        from sqs_consumer.pipeline.breakers import BreakerStage  # noqa: PLC0415  # deferred: only with breakers on

        breakers = BreakerStage(board)
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
        breakers=breakers,
        limits=build_limits(settings),
        resender=SqsResender(endpoint_url=settings.aws_endpoint_url),
    )


def build_limits(settings: ConsumerSettings) -> RateLimiter | None:
    """The stage's rate limits, their buckets in the idempotency table (in this instance's memory without one)."""
    if not settings.dependency_rate_limits:
        return None
    from sqs_consumer.dependencies.rate import (  # noqa: PLC0415  # deferred: a stage without limits never imports them
        DynamoDBTokenStore,
        InMemoryTokenStore,
        RateLimit,
        RateLimiter,
    )

    table, endpoint = settings.idempotency_table, settings.aws_endpoint_url

    def store() -> TokenStore:
        return DynamoDBTokenStore(table, dynamodb_client(endpoint)) if table else InMemoryTokenStore()

    limits = {
        name: RateLimit(limit.rate_per_second, limit.burst) for name, limit in settings.dependency_rate_limits.items()
    }
    return RateLimiter(limits, store)


def build_board(settings: ConsumerSettings) -> BreakerBoard | None:
    """The function's breakers (None when the stage turns them off): their state in the idempotency table
    (in this instance's memory without one), the mapping and the probes' schedules when Lambda runs it."""
    if not settings.breakers_enabled:
        return None
    # Deferred: a stage without breakers never imports them.
    from sqs_consumer.dependencies.board import BoardWiring, BreakerBoard  # noqa: PLC0415
    from sqs_consumer.dependencies.breaker import BreakerPolicy  # noqa: PLC0415
    from sqs_consumer.dependencies.control import LambdaMappingControl, SchedulerProbes  # noqa: PLC0415
    from sqs_consumer.dependencies.store import DynamoDBBreakerStore, InMemoryBreakerStore  # noqa: PLC0415

    table, endpoint = settings.idempotency_table, settings.aws_endpoint_url

    def store() -> BreakerStore:
        return DynamoDBBreakerStore(table, dynamodb_client(endpoint)) if table else InMemoryBreakerStore()

    policy = BreakerPolicy(settings.breaker_threshold, settings.breaker_window_seconds,
                           settings.breaker_cool_down_seconds, settings.breaker_cool_down_cap_seconds)  # fmt: skip
    name, group, role = settings.function_name, settings.probe_schedule_group, settings.probe_role_name
    return BreakerBoard(BoardWiring(
        store, policy,
        mapping=LambdaMappingControl(name, endpoint) if name else None,
        probes=SchedulerProbes(group, role, endpoint_url=endpoint) if group and role else None,
        max_concurrency=settings.mapping_max_concurrency,
        metrics=(settings.metrics_namespace, settings.service_name),
    ))  # fmt: skip


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
def _board() -> BreakerBoard | None:
    return build_board(get_settings())


@cache
def _consumer() -> BatchConsumer:
    consumer = build_consumer(get_settings(), board=_board())
    if consumer.uses_idempotency:
        # Every batch claims its records in DynamoDB: botocore and the table's service model are loaded now,
        # before the first batch's records are parsed, and frozen out of later collections (collector.py).
        load_and_freeze(lambda: preload_service_models(["dynamodb"]))
    return consumer


def handle_probe(
    probe: dict[str, Any], board: BreakerBoard | None, registry: EventRegistry = REGISTRY
) -> dict[str, Any]:
    """A scheduled probe of a dependency's breaker (dependencies/board.py); its state after it."""
    dependency = registry.dependencies.get(str(probe.get("dependency")))
    if board is None or dependency is None:
        logger.error("Probe of an unknown dependency, or with breakers off: ignored", probe=probe)
        return {"probed": False}
    state = board.probe(dependency, str(probe.get("step", "probe")), str(probe.get("queue_arn", "")))
    return {"probed": True, "dependency": dependency.name, "mode": state.mode.value}


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
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse | dict[str, Any]:
    if PROBE_KEY in event:  # EventBridge Scheduler's probe, not a batch
        board = _board()
        if board is not None:
            board.function_arn = context.invoked_function_arn
        return handle_probe(event[PROBE_KEY], board)
    board = _board()
    if board is not None and board.function_arn is None:
        board.function_arn = context.invoked_function_arn  # what a probe's schedule invokes: this alias or version
    return _consumer().handle(event, context)


# The last of the init: what it made is frozen and the collector resumed (collector.py).
resume_after_init()
