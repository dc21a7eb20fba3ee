"""``make smoke STAGE=dev``: after a deploy, a canary ``hello`` through the stage, waited for until it succeeds.

The stage's outputs (``cdk.out/outputs-<stage>.json``, written by ``make deploy``) name the consumer's
queue and function. The canary is sent to the queue with an event_id of its own; success is the
consumer's own record of it: its idempotency item, ``COMPLETED``, in the table the function's
configuration names (the key Powertools gives it: ``<function>.<namespace>#<md5 of the event_id>``).
Exit 0 once it is there; 1 when it is not within ``--timeout`` seconds (the job fails: look at the
function's log group and the DLQ), or the stage has no idempotency table; 2 for bad arguments.
The deploy role of each environment may do exactly this on its own stage (infra/deploy_role.py).
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from operations.cli import ArgumentParser, command
from sqs_consumer.idempotency.fingerprint import powertools_hash
from sqs_consumer.idempotency.records import COMPLETED, KEY_NAMESPACE
from sqs_consumer.settings import ConsumerSettings

POLL_SECONDS = 2.0
DEFAULT_TIMEOUT_SECONDS = 300.0


class SmokeError(RuntimeError):
    """The smoke test cannot run or did not pass; the message says why."""


@dataclass(frozen=True)
class Stage:
    """What the smoke test reaches of a deployed stage."""

    queue_url: str
    function_name: str


def stage_of(outputs_file: Path, consumer: str = "Queue") -> Stage:
    """The queue and function of ``consumer`` (its outputs' prefix) from a ``cdk deploy --outputs-file``."""
    if not outputs_file.is_file():
        raise SmokeError(f"{outputs_file} is missing: make deploy writes it (--outputs-file)")
    stacks: dict[str, dict[str, str]] = json.loads(outputs_file.read_text())
    outputs = next(iter(stacks.values()), {})
    try:
        return Stage(outputs[f"{consumer}QueueUrl"], outputs[f"{consumer}FunctionName"])
    except KeyError as missing:
        raise SmokeError(f"{outputs_file} has no output {missing}: is it a SqsConsumer stage's?") from None


def canary(event_id: str) -> str:
    return json.dumps({"event_id": event_id, "event_type": "hello", "payload": {"name": "smoke test"}})


def table_of(lambda_client: Any, function_name: str) -> str:
    variables = lambda_client.get_function_configuration(FunctionName=function_name)["Environment"]["Variables"]
    table = variables.get(ConsumerSettings.env_name("idempotency_table"))
    if not table:
        raise SmokeError(f"{function_name} has no idempotency table: the smoke test reads the canary's success there")
    return str(table)


def wait_for_success(
    dynamodb: Any, table: str, function_name: str, event_id: str, timeout: float, *,
    clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
) -> float:  # fmt: skip
    """Seconds until the canary's idempotency item is COMPLETED; SmokeError after ``timeout``."""
    key = {"id": {"S": f"{function_name}.{KEY_NAMESPACE}#{powertools_hash(event_id)}"}}
    started = clock()
    status = "absent"
    while clock() - started < timeout:
        item = dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        status = item["status"]["S"] if item else "absent"
        if status == COMPLETED:
            return clock() - started
        sleep(POLL_SECONDS)
    raise SmokeError(f"the canary {event_id} did not succeed within {timeout:.0f} s (its record: {status}): "
                     f"read the log group of {function_name} and the DLQ (sqs-dlq peek)")  # fmt: skip


def run(stage: Stage, timeout: float, session: Any = None) -> tuple[str, float]:
    """Send a canary to ``stage`` and wait for its success: its event_id and the seconds it took."""
    session = session or boto3.Session()
    table = table_of(session.client("lambda"), stage.function_name)
    event_id = f"smoke-{uuid.uuid4()}"
    session.client("sqs").send_message(QueueUrl=stage.queue_url, MessageBody=canary(event_id),
                                       **_fifo_fields(stage.queue_url, event_id))  # fmt: skip
    return event_id, wait_for_success(session.client("dynamodb"), table, stage.function_name, event_id, timeout)


def _fifo_fields(queue_url: str, event_id: str) -> dict[str, str]:
    return {"MessageGroupId": "smoke", "MessageDeduplicationId": event_id} if queue_url.endswith(".fifo") else {}


@command
def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m operations.smoke", description=__doc__.splitlines()[0])
    parser.add_argument("--stage", required=True, help="the stage deployed (its outputs: cdk.out/outputs-STAGE.json)")
    parser.add_argument("--outputs", type=Path, help="the outputs file (default: cdk.out/outputs-STAGE.json)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS, help="seconds to wait (300)")
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    try:
        stage = stage_of(args.outputs or Path("cdk.out") / f"outputs-{args.stage}.json")
        event_id, seconds = run(stage, args.timeout)
    except SmokeError as error:
        sys.stderr.write(f"smoke test of {args.stage}: FAILED: {error}\n")
        return 1
    sys.stdout.write(f"smoke test of {args.stage}: the canary {event_id} succeeded in {seconds:.1f} s\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
