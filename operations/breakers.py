"""The dependencies' circuit breakers and the event source mapping they pause: show them, open or close one.

    sqs-breakers status --table TABLE [--function NAME --queue-arn ARN] [--dependency NAME ...] [--json]
    sqs-breakers open   --table TABLE --dependency NAME [--minutes 30] [--reason TEXT] [--function NAME --queue-arn ARN]
    sqs-breakers close  --table TABLE --dependency NAME [--function NAME --queue-arn ARN] [--max-concurrency N]

TABLE is the stack's IdempotencyTableName output (the breakers' states live in the idempotency table);
FUNCTION and the queue's ARN name the mapping (FunctionName and QueueArn outputs). `status` shows every
dependency the deployed code's routes declare (and any --dependency), and the mapping's state and maximum
concurrency. `open` holds records of the dependency in the queue until `--minutes` pass (the next batch is then a
trial) or `close`; with --function it also disables the mapping, which then stays disabled until `close`.
`close` lets records run again; with --function it enables the mapping (at --max-concurrency if given).
Each change is a conditional write, as the function's own: it never overwrites a change made meanwhile.
--endpoint-url (the local moto server) and --region go before or after the command.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from operations.cli import ArgumentParser, command
from operations.errors import hint, one_line
from sqs_consumer.dependencies import NAME_PATTERN
from sqs_consumer.dependencies.breaker import BreakerState, closed, opened
from sqs_consumer.dependencies.control import LambdaMappingControl, MappingView
from sqs_consumer.dependencies.store import DynamoDBBreakerStore

WRITE_ATTEMPTS = 3


def _parser() -> argparse.ArgumentParser:
    common = ArgumentParser(add_help=False)
    common.add_argument("--endpoint-url", default=argparse.SUPPRESS, help="an AWS endpoint, e.g. the local moto server")
    common.add_argument("--region", default=argparse.SUPPRESS, help="AWS region (default: environment or profile)")
    common.add_argument("--table", required=True, help="the stack's IdempotencyTableName output")
    common.add_argument("--function", help="the stack's FunctionName output: show or act on its mapping too")
    common.add_argument("--queue-arn", help="the stack's QueueArn output (with --function)")
    parser = ArgumentParser(prog="sqs-breakers", description=__doc__,
                             formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True)
    status = commands.add_parser("status", parents=[common], help="each dependency's breaker, and the mapping")
    status.add_argument("--dependency", action="append", default=[], help="a dependency to show (repeatable)")
    status.add_argument("--json", action="store_true", help="one JSON object per line")
    opening = commands.add_parser("open", parents=[common], help="hold a dependency's records in the queue")
    opening.add_argument("--dependency", required=True)
    opening.add_argument("--minutes", type=float, default=30.0, help="until a trial runs (default 30)")
    opening.add_argument("--reason", default="opened by hand", help="shown by status and in the logs")
    closing = commands.add_parser("close", parents=[common], help="let a dependency's records run again")
    closing.add_argument("--dependency", required=True)
    closing.add_argument("--max-concurrency", type=int, help="the mapping's maximum concurrency once enabled")
    return parser


@command
def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    names = args.dependency if isinstance(args.dependency, list) else [args.dependency]
    for name in names:
        if not NAME_PATTERN.fullmatch(name):
            parser.error(f"--dependency {name!r}: 1-40 characters of a-z, 0-9 and '-'")
    if (args.function is None) != (args.queue_arn is None):
        parser.error("--function and --queue-arn go together: they name the event source mapping")
    if args.queue_arn is not None and not args.queue_arn.startswith("arn:"):
        parser.error("--queue-arn must be an SQS queue ARN (arn:aws:sqs:REGION:ACCOUNT:NAME)")
    if getattr(args, "minutes", None) is not None and not 0 < args.minutes <= 1_440:
        parser.error("--minutes must be between 0 and 1440")
    if getattr(args, "max_concurrency", None) is not None and not 2 <= args.max_concurrency <= 1_000:
        parser.error("--max-concurrency must be between 2 and 1000 (Lambda's range)")
    try:
        return _run(args)
    except BrokenPipeError:
        raise
    except Exception as exc:  # one line that says what to do, never a traceback
        print(f"{parser.prog} {args.command}: {one_line(exc)}{hint(exc)}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    import boto3  # noqa: PLC0415  # only once the arguments are valid

    endpoint = getattr(args, "endpoint_url", None) or os.environ.get("AWS_ENDPOINT_URL")
    region = getattr(args, "region", None)

    def client(service: str, _: str | None = None) -> Any:
        return boto3.client(service, endpoint_url=endpoint, region_name=region)  # type: ignore[call-overload]

    store = DynamoDBBreakerStore(args.table, client("dynamodb"))
    mapping = LambdaMappingControl(args.function, endpoint, client_factory=client) if args.function else None
    if args.command == "status":
        return _status(store, mapping, args)
    now, name = time.time(), args.dependency
    if args.command == "open":
        state = _change(store, name, lambda s: opened(s, now, args.minutes * 60, "operator", args.reason))
        if mapping is not None:
            mapping.pause(args.queue_arn)
    else:
        state = _change(store, name, lambda s: closed(s, "operator", "closed by hand"))
        if mapping is not None:
            mapping.resume(args.queue_arn, args.max_concurrency)
    print(json.dumps(_row(name, state, now)))
    return 0


def _change(store: DynamoDBBreakerStore, name: str, change: Callable[[BreakerState], BreakerState]) -> BreakerState:
    state = store.read([name])[name]
    for _ in range(WRITE_ATTEMPTS):
        new = change(state)
        found = store.write(name, state.version, new)
        if found is None:
            return new
        state = found
    raise RuntimeError(f"the breaker of {name} kept changing under this write: try again")


def _status(store: DynamoDBBreakerStore, mapping: LambdaMappingControl | None, args: argparse.Namespace) -> int:
    from sqs_consumer.routes import REGISTRY  # noqa: PLC0415  # the deployed code's routes name the dependencies

    names = list(dict.fromkeys([*REGISTRY.dependencies, *args.dependency]))
    now = time.time()
    rows = [_row(name, state, now) for name, state in store.read(names).items()]
    if mapping is not None:
        rows.append(_mapping_row(mapping.describe(args.queue_arn)))
    for row in rows:
        print(json.dumps(row) if args.json else "  ".join(f"{key}={value}" for key, value in row.items()))
    return 0


def _row(name: str, state: BreakerState, now: float) -> dict[str, Any]:
    return {
        "dependency": name,
        "state": state.mode.value,
        "failures_in_window": state.failures,
        "open_for_seconds": round(now - state.opened_at) if state.opened_at and state.mode.value != "closed" else 0,
        "next_probe_in_seconds": round(state.seconds_to_probe(now)) if state.probe_at else None,
        "cool_down_seconds": state.cool_down_seconds or None,
        "changed_by": state.changed_by or None,
        "reason": state.reason or None,
    }


def _mapping_row(view: MappingView) -> dict[str, Any]:
    return {"mapping": view.uuid, "state": view.state, "enabled": view.enabled, "max_concurrency": view.max_concurrency}
