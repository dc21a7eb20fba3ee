"""One invocation of the consumer in a process of its own, for crash.py to SIGKILL at a chosen moment.

    python -m tests.support.crash_child STRATEGY EVENT_FILE REMAINING_MS LATENCY_MS

It imports and builds everything, prints ``ready``, and invokes once a line arrives on stdin, with
a Lambda context that has REMAINING_MS left. Each idempotency store call waits LATENCY_MS before it
is sent, as a call to DynamoDB across a network does. The handlers' effects are the ``Hello`` lines
on stdout, written unbuffered (PYTHONUNBUFFERED) so a kill loses none of them.

Strategies: ``group`` is the function's entry point as deployed (group commit); ``batch_end`` the
same consumer writing its completions only once the batch is done (the design group commit
replaced); ``powertools`` Powertools' ``@idempotent_function`` around each record's handler in its
``BatchProcessor``, the library's own per-record way.
"""

from __future__ import annotations

import asyncio
import json
import sys
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


STRATEGIES = {"group": group_handler, "batch_end": batch_end_handler, "powertools": powertools_handler}


def main() -> None:
    strategy, event_path, remaining_ms, latency_ms = sys.argv[1:5]
    handler = STRATEGIES[strategy](int(latency_ms) / 1000)
    event = json.loads(open(event_path).read())  # noqa: SIM115
    # A warm execution environment: imports done, the consumer and the store's client built, as a
    # first batch leaves them (its event is the environment's own, not one of the batch under test).
    warm_up = dict(event["Records"][0], messageId="warm-up", body=json.dumps(
        {"event_id": f"warm-up-{time.time_ns()}", "event_type": "hello", "payload": {"name": "warm-up"}}))  # fmt: skip
    handler({"Records": [warm_up]}, Context(int(remaining_ms)))
    print("ready", flush=True)
    sys.stdin.readline()
    response = handler(event, Context(int(remaining_ms)))
    print(json.dumps({"response": response}), flush=True)


if __name__ == "__main__":
    main()
