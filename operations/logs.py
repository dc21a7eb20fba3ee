"""sqs-logs: the deployed function's log lines, from CloudWatch Logs, as they come.

    sqs-logs --stage dev [--since 15m] [--event-id ID | --trace-id ID] [--follow]

One event's story with --event-id or --trace-id: every line that names it, the consumer's lines about
its record and the handler's own, in time order. The log group is the stack's ``LogGroupName`` output,
read from cdk.out/outputs-STAGE.json (make deploy writes it), else from the stack itself; --log-group
names one. ``make logs STAGE=dev [SINCE=15m] [EVENT_ID=... | TRACE_ID=...] [FOLLOW=1]`` runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from operations.cli import ArgumentParser, command
from operations.errors import hint, one_line

STACK_PREFIX = "SqsConsumer-"
LOG_GROUP_OUTPUT = "LogGroupName"
# How often follow mode asks for new lines; CloudWatch Logs delivers them seconds after they are written.
POLL_SECONDS = 2.0
# How far before the newest line seen follow mode asks again: each instance's stream reaches CloudWatch
# Logs on its own, so a line stamped earlier than one already printed may still arrive (Lambda delivers
# within seconds; a minute leaves room for a slow one). The ids already printed are skipped.
FOLLOW_OVERLAP_MS = 60_000
_DURATION = re.compile(r"^(\d+)([smhd])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


class CloudWatchLogsClient(Protocol):
    """What is used of botocore's CloudWatch Logs client."""

    def filter_log_events(self, **arguments: Any) -> Any: ...


class LogsError(Exception):
    """An expected failure, said in one line."""


def since_ms(text: str, now_ms: int) -> int:
    """``30s``, ``15m``, ``2h``, ``1d`` before ``now_ms``, in epoch milliseconds."""
    found = _DURATION.match(text.strip())
    if found is None or int(found[1]) == 0:
        raise argparse.ArgumentTypeError(f"not a duration like 30s, 15m, 2h or 1d: {text!r}")
    return now_ms - int(found[1]) * _SECONDS[found[2]] * 1000


def filter_pattern(event_id: str | None, trace_id: str | None) -> str:
    """CloudWatch Logs' pattern for the lines that name the id (a quoted term: the exact text, anywhere)."""
    value = event_id or trace_id
    if value is None:
        return ""
    if '"' in value or not value.strip():
        raise LogsError(f"cannot filter on {value!r}: an id with a double quote cannot be a quoted term")
    return f'"{value}"'


def log_group_of(stage: str, outputs: Path, describe: Callable[[str], dict[str, str]]) -> str:
    """The stage's log group: the deploy's outputs file, else the stack's outputs (``describe``)."""
    stack = f"{STACK_PREFIX}{stage}"
    if outputs.is_file():
        group = json.loads(outputs.read_text()).get(stack, {}).get(LOG_GROUP_OUTPUT)
        if group:
            return str(group)
    group = describe(stack).get(LOG_GROUP_OUTPUT)
    if not group:
        raise LogsError(f"stack {stack} has no {LOG_GROUP_OUTPUT} output: deploy it (make deploy STAGE={stage})")
    return group


def read(
    client: CloudWatchLogsClient,
    group: str,
    *,
    start_ms: int,
    pattern: str,
    follow: bool = False,
    sleep: Callable[[float], None] = time.sleep,
    polls: int | None = None,
) -> Iterator[dict[str, Any]]:
    """The group's events from ``start_ms``, oldest first; with ``follow``, then each new one as it comes
    (``polls`` bounds the rounds, for tests), late ones too: each round asks again from
    ``FOLLOW_OVERLAP_MS`` before the newest line seen. An event is yielded once, however many rounds see it."""
    seen: dict[str, int] = {}  # the events yielded, by id, with their times
    first_ms = newest_ms = start_ms
    rounds = 0
    while True:
        for event in _pages(client, group, start_ms, pattern):
            if event["eventId"] not in seen:
                seen[event["eventId"]] = stamp = int(event["timestamp"])
                newest_ms = max(newest_ms, stamp)
                yield event
        rounds += 1
        if not follow or (polls is not None and rounds >= polls):
            return
        # Another instance's lines stamped before the newest one seen may come later: the window overlaps
        # the last one, and only the ids seen within it are kept to skip.
        start_ms = max(first_ms, newest_ms - FOLLOW_OVERLAP_MS)
        seen = {event_id: stamp for event_id, stamp in seen.items() if stamp >= start_ms}
        sleep(POLL_SECONDS)


def _pages(client: CloudWatchLogsClient, group: str, start_ms: int, pattern: str) -> Iterator[dict[str, Any]]:
    arguments: dict[str, Any] = {"logGroupName": group, "startTime": start_ms}
    if pattern:
        arguments["filterPattern"] = pattern
    while True:
        page = client.filter_log_events(**arguments)
        yield from sorted(page.get("events", []), key=lambda event: (event["timestamp"], event["eventId"]))
        token = page.get("nextToken")
        if not token:
            return
        arguments["nextToken"] = token


def line(event: dict[str, Any]) -> str:
    """One event as one line: its time (UTC, ms), then its message as the function wrote it."""
    stamp = datetime.fromtimestamp(int(event["timestamp"]) / 1000, UTC).isoformat(timespec="milliseconds")
    return f"{stamp.replace('+00:00', 'Z')}  {str(event['message']).rstrip()}"


def _parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="sqs-logs", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", default="dev", help="the stage whose function's logs to read (default dev)")
    parser.add_argument("--since", default="15m", help="how far back: 30s, 15m, 2h, 1d (default 15m)")
    ids = parser.add_mutually_exclusive_group()
    ids.add_argument("--event-id", help="only the lines that name this event_id")
    ids.add_argument("--trace-id", help="only the lines that name this X-Ray trace id (1-<8 hex>-<24 hex>)")
    parser.add_argument("--follow", action="store_true", help="keep printing new lines until Ctrl-C")
    parser.add_argument("--log-group", help="read this log group instead of the stage's")
    parser.add_argument("--outputs", type=Path, help="the deploy's outputs file (default cdk.out/outputs-STAGE.json)")
    parser.add_argument("--region", help="AWS region (default: environment or profile)")
    parser.add_argument("--endpoint-url", help="a CloudWatch Logs endpoint (tests, emulators)")
    return parser


@command
def main(argv: Sequence[str] | None = None, *, sleep: Callable[[float], None] = time.sleep) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        start = since_ms(args.since, int(time.time() * 1000))
    except argparse.ArgumentTypeError as error:
        parser.error(f"--since: {error}")
    if args.trace_id is not None and not re.fullmatch(r"1-[0-9a-f]{8}-[0-9a-f]{24}", args.trace_id):
        parser.error(f"--trace-id: not an X-Ray trace id (1-<8 hex>-<24 hex>): {args.trace_id!r}")
    try:
        return _run(args, start, sleep)
    except BrokenPipeError:  # the reader went away: ended quietly by @command
        raise
    except Exception as exc:  # one line that says what to do, never a traceback
        print(f"{parser.prog}: {one_line(exc)}{hint(exc)}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, start_ms: int, sleep: Callable[[float], None]) -> int:
    import boto3  # noqa: PLC0415  # only once the arguments are valid

    session = boto3.session.Session(region_name=args.region)
    endpoint = args.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_LOGS") or os.environ.get("AWS_ENDPOINT_URL")
    client = session.client("logs", endpoint_url=endpoint)
    pattern = filter_pattern(args.event_id, args.trace_id)
    group = args.log_group or log_group_of(
        args.stage, args.outputs or Path("cdk.out") / f"outputs-{args.stage}.json", _stack_outputs(session)
    )
    printed = 0
    for event in read(client, group, start_ms=start_ms, pattern=pattern, follow=args.follow, sleep=sleep):
        print(line(event), flush=args.follow)
        printed += 1
    what = f" naming {args.event_id or args.trace_id}" if pattern else ""
    print(f"{printed} line(s){what} in {group} since {args.since} ago", file=sys.stderr)
    return 0


def _stack_outputs(session: Any) -> Callable[[str], dict[str, str]]:
    def describe(stack: str) -> dict[str, str]:
        [found] = session.client("cloudformation").describe_stacks(StackName=stack)["Stacks"]
        return {output["OutputKey"]: output["OutputValue"] for output in found.get("Outputs", [])}

    return describe


if __name__ == "__main__":
    sys.exit(main())
