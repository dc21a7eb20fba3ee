"""One invocation of the consumer in a process of its own, for crash.py to SIGKILL at a chosen moment.

    python -m tests.support.crash_child STRATEGY EVENT_FILE REMAINING_MS LATENCY_MS

It imports and builds everything, prints ``ready``, and invokes once a line arrives on stdin, with
a Lambda context that has REMAINING_MS left. Each idempotency store call waits LATENCY_MS before it
is sent, as a call to DynamoDB across a network does. The handlers' effects are the ``Hello`` lines
on stdout, written unbuffered (PYTHONUNBUFFERED) so a kill loses none of them.

Strategies: ``group`` is the function's entry point as deployed (group commit); ``batch_end`` the
same consumer writing its completions only once the batch is done (the design group commit
replaced); ``powertools`` Powertools' ``@idempotent_function`` around each record's handler in its
``BatchProcessor``, the library's own per-record way. ``followups:<point>`` is the deployed consumer
whose handler emits one follow-up to each destination of ``FOLLOWUP_QUEUES``, the process SIGKILLing
itself at ``<point>`` of the follow-ups' way (KILL_POINTS), the first time it gets there; ``followups:none``
runs to the end (a redelivery).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
import time
from typing import Any


class Context:
    function_name = "consumer"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:consumer"
    aws_request_id = "crash-test"

    def __init__(self, remaining_ms: int) -> None:
        self._deadline_ms = time.time() * 1000 + remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return int(self._deadline_ms - time.time() * 1000)


def with_latency(client: Any, seconds: float) -> Any:
    def wait(**kwargs: Any) -> None:
        time.sleep(seconds)

    client.meta.events.register("before-send.dynamodb", wait)
    return client


def group_handler(latency: float) -> Any:
    from sqs_consumer import clients
    from sqs_consumer.handler import lambda_handler
    from sqs_consumer.idempotency import dynamodb

    def slowed(endpoint_url: str | None = None) -> Any:
        return with_latency(clients.dynamodb_client(endpoint_url), latency)

    setattr(dynamodb, "dynamodb_client", slowed)  # noqa: B010  # the store's client, as it imported it
    return lambda_handler


def batch_end_handler(latency: float) -> Any:
    from sqs_consumer.pipeline import consumer
    from sqs_consumer.pipeline.commit import GroupCommit

    class BatchEndCommit(GroupCommit):
        """Completions written once the batch is done, in one write."""

        def _start(self) -> None:
            return None

        def wait(self) -> int:
            with self._lock:
                GroupCommit._start(self)
            return super().wait()

    setattr(consumer, "GroupCommit", BatchEndCommit)  # noqa: B010
    return group_handler(latency)


def powertools_handler(latency: float) -> Any:
    import boto3
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )

    from sqs_consumer.idempotency.fingerprint import FINGERPRINT_JMESPATH
    from sqs_consumer.models.record import RecordInfo
    from sqs_consumer.routes import REGISTRY
    from sqs_consumer.settings import get_settings

    settings = get_settings()
    client = with_latency(boto3.client("dynamodb", endpoint_url=settings.aws_endpoint_url), latency)
    layer = DynamoDBPersistenceLayer(table_name=str(settings.idempotency_table), boto3_client=client)
    config = IdempotencyConfig(event_key_jmespath="event_id", payload_validation_jmespath=FINGERPRINT_JMESPATH)
    processor = BatchProcessor(EventType.SQS, raise_on_entire_batch_failure=False)

    def handler(event: dict[str, Any], context: Any) -> Any:
        config.register_lambda_context(context)

        def record_handler(record: Any) -> None:
            info = RecordInfo(record.raw_event)

            @idempotent_function(data_keyword_argument="parsed", persistence_store=layer, config=config)  # type: ignore[untyped-decorator]
            def process(parsed: Any) -> None:
                result = REGISTRY.route_for(parsed).handler(parsed, info)
                if result is not None:
                    asyncio.run(result)  # type: ignore[arg-type]

            process(parsed=REGISTRY.parse(record.body))

        return process_partial_response(event, record_handler, processor, context)

    return handler


# Where a follow-up's way can be cut: before the write that stores it with its completion is sent; once that
# write answered, before any send; once one destination's send answered (the others maybe not); once every
# send answered, before the write that marks them sent.
KILL_POINTS = ("before_commit", "after_commit", "mid_send", "after_send")


class Killer:
    """SIGKILLs this process at ``point``, from botocore's event hooks on the function's own clients, once armed
    (the warm-up batch before ``go`` runs unharmed)."""

    def __init__(self, point: str, destinations: int) -> None:
        self.point = point
        self.destinations = destinations
        self.armed = False
        self.committing = False
        self.sends = 0
        self._lock = threading.Lock()

    def kill(self, point: str) -> None:
        if self.armed and point == self.point:
            print(json.dumps({"message": "Killed", "point": point}), flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    def dynamodb_before_send(self, request: Any, **kwargs: Any) -> None:
        if "BatchWriteItem" not in str(request.headers.get("X-Amz-Target", b"")):
            return
        if self.sends >= self.destinations:  # every send answered: this write marks them sent
            self.kill("after_send")
        self.committing = b"followups" in (request.body or b"") and self.sends == 0
        if self.committing:
            self.kill("before_commit")

    def dynamodb_after_call(self, model: Any, **kwargs: Any) -> None:
        if model.name == "BatchWriteItem" and self.committing:
            self.kill("after_commit")

    def sqs_after_call(self, model: Any, **kwargs: Any) -> None:
        if model.name == "SendMessageBatch":
            with self._lock:
                self.sends += 1
                if self.sends == 1:
                    self.kill("mid_send")


def followups_handler(point: str, latency: float) -> Any:
    from sqs_consumer import clients, followups
    from sqs_consumer.handler import build_consumer
    from sqs_consumer.idempotency import dynamodb
    from sqs_consumer.models import HelloEvent
    from sqs_consumer.models.record import RecordInfo
    from sqs_consumer.observability import logger
    from sqs_consumer.registry import EventRegistry, Route
    from sqs_consumer.settings import get_settings

    destinations = sorted(json.loads(os.environ["FOLLOWUP_QUEUES"]))
    killer = Killer(point, len(destinations))
    ARMING.append(killer)

    def store_client(endpoint_url: str | None = None) -> Any:
        client = with_latency(clients.dynamodb_client(endpoint_url), latency)
        client.meta.events.register("before-send.dynamodb", killer.dynamodb_before_send)
        client.meta.events.register("after-call.dynamodb", killer.dynamodb_after_call)
        return client

    def sqs_client(endpoint_url: str | None = None) -> Any:
        client = clients.sqs_client(endpoint_url)
        client.meta.events.register("after-call.sqs", killer.sqs_after_call)
        return client

    setattr(dynamodb, "dynamodb_client", store_client)  # noqa: B010  # the store's client, as it imported it
    setattr(followups, "sqs_client", sqs_client)  # noqa: B010  # the sender's client, as it imported it

    def handle(event: HelloEvent, record: RecordInfo) -> None:
        logger.info("Hello", event_id=event.event_id)
        for position, to in enumerate(destinations):
            record.emit({"event_type": "hello", "payload": {"name": f"{event.event_id}/{position}"}}, to=to)

    consumer = build_consumer(get_settings(), EventRegistry([Route(HelloEvent, handle)]))
    return consumer.handle


# The killers to arm once the warm-up batch is done.
ARMING: list[Killer] = []
STRATEGIES = {"group": group_handler, "batch_end": batch_end_handler, "powertools": powertools_handler}


def main() -> None:
    strategy, event_path, remaining_ms, latency_ms = sys.argv[1:5]
    if strategy.startswith("followups:"):
        handler = followups_handler(strategy.partition(":")[2], int(latency_ms) / 1000)
    else:
        handler = STRATEGIES[strategy](int(latency_ms) / 1000)
    event = json.loads(open(event_path).read())  # noqa: SIM115
    # A warm execution environment: imports done, the consumer and the store's client built, as a
    # first batch leaves them (its event is the environment's own, not one of the batch under test).
    warm_up = dict(event["Records"][0], messageId="warm-up", body=json.dumps(
        {"event_id": f"warm-up-{time.time_ns()}", "event_type": "hello", "payload": {"name": "warm-up"}}))  # fmt: skip
    handler({"Records": [warm_up]}, Context(int(remaining_ms)))
    for killer in ARMING:  # the warm-up's own follow-ups went: counted from here
        killer.armed, killer.sends, killer.committing = True, 0, False
    print("ready", flush=True)
    sys.stdin.readline()
    response = handler(event, Context(int(remaining_ms)))
    print(json.dumps({"response": response}), flush=True)


if __name__ == "__main__":
    main()
