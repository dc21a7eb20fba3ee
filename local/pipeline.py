"""The whole system on loopback, built from the synthesized template."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local.emulator import FunctionEmulator
from local.event_source import BatchResult, EventSourceMapping
from local.sqs_server import LOCAL_CREDENTIALS, Queue, SqsServer, create_buckets, create_queues, create_tables
from local.template import LocalPlan, TemplateError, load_plan
from sqs_consumer.settings import ConsumerSettings

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


@dataclass
class Pipeline:
    plan: LocalPlan
    server: SqsServer
    client: SQSClient
    queue: Queue
    dead_letter_queue: Queue
    functions: list[FunctionEmulator]
    mapping: EventSourceMapping | None
    # The function's PAYLOAD_BUCKET, created in moto's S3.
    payload_bucket: str | None = None


def resolve_environment(
    plan: LocalPlan,
    queues: dict[str, Queue],
    tables: dict[str, str],
    endpoint_url: str,
    buckets: dict[str, str] | None = None,
) -> dict[str, str]:
    """The function's template environment with references resolved to the local queues, tables and buckets."""
    names = {**tables, **(buckets or {})}

    def resolve(name: str, value: Any) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, dict) and value.get("Ref") in names:
            return names[value["Ref"]]
        if isinstance(value, dict) and "Ref" in value and value["Ref"] in queues:
            return queues[value["Ref"]].url
        if isinstance(value, dict) and "Fn::GetAtt" in value and value["Fn::GetAtt"][0] in queues:
            return queues[value["Fn::GetAtt"][0]].arn
        if isinstance(value, dict) and "Fn::Join" in value:  # FOLLOWUP_QUEUES: JSON around queue URLs
            separator, parts = value["Fn::Join"]
            return str(separator).join(resolve(name, part) for part in parts)
        raise TemplateError(f"cannot resolve {name}={value!r} locally")

    environment = {name: resolve(name, value) for name, value in plan.function.environment.items()}
    environment[ConsumerSettings.env_name("aws_endpoint_url")] = endpoint_url
    return {**environment, **LOCAL_CREDENTIALS}


@contextlib.contextmanager
def running_pipeline(
    template: Path,
    log_dir: Path,
    *,
    poll: bool = True,
    instances: int | None = None,
    on_batch: Callable[[BatchResult], None] = lambda _: None,
    log_level: str | None = None,
    environment_overrides: dict[str, str] | None = None,
    consumer: str = "",
) -> Iterator[Pipeline]:
    """Start moto, the queues, the function instances and (if ``poll``) the mapping; stop all on exit.

    ``consumer`` picks one of the stack's consumers by name (the first by default). ``log_level``
    overrides the template's, e.g. DEBUG to observe each handler's effect. Each run
    starts with fresh logs in ``log_dir``.
    """
    plan = load_plan(template, consumer)
    log_dir.mkdir(parents=True, exist_ok=True)
    for old in log_dir.glob("*.log"):
        old.unlink()
    server = SqsServer(log_path=log_dir / "moto.log")
    functions: list[FunctionEmulator] = []
    mapping: EventSourceMapping | None = None
    try:
        client = server.client()
        queues = create_queues(client, plan)
        tables = create_tables(server.endpoint_url, plan)
        buckets = create_buckets(server.endpoint_url, plan)
        environment = resolve_environment(plan, queues, tables, server.endpoint_url, buckets)
        if log_level is not None:
            environment[ConsumerSettings.env_name("log_level")] = log_level
        environment.update(environment_overrides or {})
        count = instances or plan.mapping.max_concurrency
        for index in range(count):
            functions.append(FunctionEmulator(plan.function, environment, log_path=log_dir / f"function-{index}.log"))
        queue = queues[plan.source_queue.logical_id]
        if poll:
            wait = int(plan.source_queue.attributes.get("ReceiveMessageWaitTimeSeconds", "0"))
            mapping = EventSourceMapping(
                client, queue, plan.mapping, functions, wait_time_seconds=wait, on_batch=on_batch
            )
            mapping.start()
        dlq = queues[plan.dead_letter_queue.logical_id]
        bucket = environment.get(ConsumerSettings.env_name("payload_bucket"))
        yield Pipeline(plan, server, client, queue, dlq, functions, mapping, bucket)
    finally:
        if mapping is not None:
            mapping.stop()
        for function in functions:
            function.stop()
        server.stop()
