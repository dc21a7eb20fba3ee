"""CLI: validate and publish events to the queue.

    sqs-publish --queue-url URL '{"event_id": ...}' ...
    sqs-publish --queue-url URL --file events.json
    some-producer | sqs-publish --queue-url URL          (JSON lines on stdin)

(`make setup` installs sqs-publish into .venv/bin; `python -m publisher` is the same.)
Prints one line per event and exits 1 if any event was not sent; an expected failure (no region,
no credentials, a queue that does not exist) is one line saying what to do, and exit code 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from operations.errors import hint, one_line
from publisher.client import EventPublisher


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(prog="sqs-publish", description="Validate events and send them to the queue.")
    parser.add_argument("events", nargs="*", help="events as JSON objects (default: JSON lines on stdin)")
    parser.add_argument("--queue-url", required=True, help="the QueueUrl output of the stack, or a local queue")
    parser.add_argument("--file", type=Path, help="a JSON file holding one event or a list of events")
    parser.add_argument("--endpoint-url", help="an SQS endpoint, e.g. the local moto server")
    parser.add_argument("--region", help="AWS region (default: from the environment or profile)")
    parser.add_argument("--group-id", help="message group id, required for a FIFO queue")
    return parser


def _read_events(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[Any]:
    try:
        if args.file and args.events:
            parser.error("give events as arguments or with --file, not both")
        if args.file:
            loaded = json.loads(args.file.read_text())
            return loaded if isinstance(loaded, list) else [loaded]
        if args.events:
            return [json.loads(text) for text in args.events]
        return [json.loads(line) for line in sys.stdin if line.strip()]
    except (OSError, json.JSONDecodeError) as error:
        parser.error(f"cannot read events: {error}")
    raise AssertionError("unreachable")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.queue_url.endswith(".fifo") and not args.group_id:
        parser.error("--group-id is required for a FIFO queue")
    events = _read_events(args, parser)
    if not events:
        parser.error("no events to publish")
    try:
        client = boto3.client(
            "sqs",
            endpoint_url=args.endpoint_url,
            region_name=args.region,
            config=Config(retries={"mode": "standard", "max_attempts": 5}),
        )
        results = EventPublisher(args.queue_url, client).publish(events, group_id=args.group_id)
    except Exception as error:  # one line that says what to do, never a traceback
        print(f"{parser.prog}: {one_line(error)}{hint(error)}", file=sys.stderr)
        return 1
    for result in results:
        if result.ok:
            print(f"sent    {result.event_id}  message_id={result.message_id}")
        else:
            print(f"FAILED  {result.event_id or '<no event_id>'}  {result.error}")
    return 0 if all(result.ok for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
