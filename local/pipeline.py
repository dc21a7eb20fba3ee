"""The whole system on loopback, built from the synthesized template."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local import lambda_api
from local.emulator import FunctionEmulator, Invocation
from local.event_source import BatchResult, EventSourceMapping
from local.lambda_api import MappingSettings, MappingState
from local.orders_api import ORDERS_API_URL, OrdersApi
from local.scheduler import LocalScheduler
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
    # The mapping's UUID in moto's Lambda API: UpdateEventSourceMapping on it pauses or resizes the poller.
    mapping_id: str = ""
    function_name: str = ""
    scheduler: LocalScheduler | None = None
    # The stand-in orders API, when ORDERS_API_URL was not given.
    orders_api: OrdersApi | None = None


def least_busy(functions: list[FunctionEmulator]) -> Callable[[dict[str, Any]], Invocation]:
    """Invoke an instance that is not running a batch (the last ones first: the mapping's workers
    beyond its maximum concurrency idle first); all busy: the last, after its batch."""

    def invoke(event: dict[str, Any]) -> Invocation:
        idle = [function for function in reversed(functions) if not function.invoking]
        return (idle or functions[-1:])[0].invoke(event)

    return invoke


def resolve_environment(
    plan: LocalPlan,
    queues: dict[str, Queue],
    tables: dict[str, str],
    endpoint_url: str,
    buckets: dict[str, str] | None = None,
) -> dict[str, str]:
    """The function's template environment with references resolved to the local queues, tables and buckets."""
    names = {**tables, **(buckets or {}), **plan.schedule_groups}
    roles = {logical_id: lambda_api.role_arn(plan, logical_id) for logical_id in plan.roles}

    def resolve(name: str, value: Any) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, dict) and value.get("Ref") in names:
            return names[value["Ref"]]
        attribute = value.get("Fn::GetAtt") if isinstance(value, dict) else None
        if attribute and attribute[0] in roles and attribute[1] == "Arn":
            return roles[attribute[0]]
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
    # Its Lambda and Scheduler clients (pausing its mapping, scheduling a probe) reach moto too.
    environment |= {"AWS_ENDPOINT_URL_LAMBDA": endpoint_url, "AWS_ENDPOINT_URL_SCHEDULER": endpoint_url}
    return {**environment, **LOCAL_CREDENTIALS}


def _orders_api(given: OrdersApi | None) -> tuple[str, OrdersApi | None]:
    """ORDERS_API_URL from this process's environment; unset, a stand-in (``given`` or a new one) on loopback."""
    if given is None and os.environ.get(ORDERS_API_URL):
        return os.environ[ORDERS_API_URL], None
    api = given or OrdersApi()
    if not api.started:
        api.start()
    return api.url, api


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
    orders_api: OrdersApi | None = None,
) -> Iterator[Pipeline]:
    """Start moto, the queues, the function instances and (if ``poll``) the mapping; stop all on exit.

    ``consumer`` picks one of the stack's consumers by name (the first by default). ``log_level``
    overrides the template's, e.g. DEBUG to observe each handler's effect. Each run
    starts with fresh logs in ``log_dir``. The function's ORDERS_API_URL is this process's; unset, it is
    ``orders_api`` (started here if it is not yet) or a stand-in started here.
    """
    plan = load_plan(template, consumer)
    _fresh_logs(log_dir)
    server = SqsServer(log_path=log_dir / "moto.log")
    functions: list[FunctionEmulator] = []
    mapping: EventSourceMapping | None = None
    scheduler: LocalScheduler | None = None
    orders_url, stand_in = _orders_api(orders_api)
    try:
        client = server.client()
        queues, tables, buckets, mapping_id = _create_resources(server.endpoint_url, client, plan)
        queue = queues[plan.source_queue.logical_id]
        environment = resolve_environment(plan, queues, tables, server.endpoint_url, buckets)
        _set_for_run(environment, orders_url, log_level, environment_overrides)
        name = lambda_api.function_name(plan)
        for index in range(instances or plan.mapping.max_concurrency):
            log_path = log_dir / f"function-{index}.log"
            functions.append(FunctionEmulator(plan.function, environment, log_path=log_path, name=name))
        if poll:
            mapping = _start_mapping(server.endpoint_url, client, plan, queue, functions, mapping_id, on_batch=on_batch)
            scheduler = LocalScheduler(lambda_api.scheduler_client(server.endpoint_url), name, least_busy(functions))
            scheduler.start()
        dlq = queues[plan.dead_letter_queue.logical_id]
        bucket = environment.get(ConsumerSettings.env_name("payload_bucket"))
        yield Pipeline(
            plan, server, client, queue, dlq, functions, mapping, bucket, mapping_id, name, scheduler, stand_in
        )
    finally:
        _stop(scheduler, mapping, functions, server, stand_in if orders_api is None else None)


def _fresh_logs(log_dir: Path) -> None:
    """``log_dir``, made if missing, without the logs of a run before."""
    log_dir.mkdir(parents=True, exist_ok=True)
    for old in log_dir.glob("*.log"):
        old.unlink()


def _set_for_run(
    environment: dict[str, str], orders_url: str, log_level: str | None, overrides: dict[str, str] | None
) -> None:
    """What this run sets in the function's environment: the orders API's URL, the log level if one is
    asked for, and the caller's overrides over all."""
    environment[ORDERS_API_URL] = orders_url
    if log_level is not None:
        environment[ConsumerSettings.env_name("log_level")] = log_level
    environment.update(overrides or {})


def _create_resources(
    endpoint_url: str, client: SQSClient, plan: LocalPlan
) -> tuple[dict[str, Queue], dict[str, str], dict[str, str], str]:
    """The stack's queues, tables and buckets on moto, the function's record, its schedule groups and its
    mapping in moto's Lambda API; the queues, tables and buckets by logical id, and the mapping's id."""
    queues = create_queues(client, plan)
    tables = create_tables(endpoint_url, plan)
    buckets = create_buckets(endpoint_url, plan)
    lambda_api.create_function_record(endpoint_url, plan)
    lambda_api.create_schedule_groups(endpoint_url, plan)
    mapping_id = lambda_api.create_mapping(endpoint_url, plan, queues[plan.source_queue.logical_id].arn)
    return queues, tables, buckets, mapping_id


def _stop(
    scheduler: LocalScheduler | None,
    mapping: EventSourceMapping | None,
    functions: list[FunctionEmulator],
    server: SqsServer,
    stand_in: OrdersApi | None,
) -> None:
    """Stop what the pipeline started: its poller and scheduler first, then the instances and moto; the
    orders API's stand-in when it was started here."""
    for running in (scheduler, mapping):
        if running is not None:
            running.stop()
    for function in functions:
        function.stop()
    server.stop()
    if stand_in is not None:
        stand_in.stop()


def _start_mapping(  # noqa: PLR0917  # what the pipeline made, in the order it made them
    endpoint_url: str,
    client: SQSClient,
    plan: LocalPlan,
    queue: Queue,
    functions: list[FunctionEmulator],
    mapping_id: str,
    *,
    on_batch: Callable[[BatchResult], None],
) -> EventSourceMapping:
    """The emulated poller, obeying the mapping as moto's Lambda API holds it."""
    wait = int(plan.source_queue.attributes.get("ReceiveMessageWaitTimeSeconds", "0"))
    initial = MappingSettings(enabled=True, max_concurrency=plan.mapping.max_concurrency)
    state = MappingState.of(endpoint_url, mapping_id, initial)
    mapping = EventSourceMapping(
        client, queue, plan.mapping, functions, wait_time_seconds=wait, on_batch=on_batch, state=state
    )
    mapping.start()
    return mapping
