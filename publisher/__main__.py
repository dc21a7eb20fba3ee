"""CLI: validate and publish events to the queue.

    sqs-publish --queue-url URL '{"event_id": ...}' ...
    sqs-publish --queue-url URL --file events.json
    some-producer | sqs-publish --queue-url URL          (JSON lines on stdin, read as they are sent)
    sqs-publish --queue-url URL --payload-bucket BUCKET ...      (offload events above the queue's maximum)
    sqs-publish --queue-url URL.fifo --group-field payload.tenant_id ...   (a FIFO group per event)

(`make setup` installs sqs-publish into .venv/bin; `python -m publisher` is the same.)
Requests go out --concurrency at a time (32 by default); on a FIFO queue one group's requests go one
after the other, in input order, and a message is never sent after a later one of its group: an entry
SQS fails is not retried once later entries of its group were accepted, and after a message of a group
fails for good the group's later events are not sent (each reported, with why). A partial batch goes
out after 50 ms without input, so a producer that pauses does not hold back what it wrote.
--payload-bucket is the stack's payload bucket output: an event whose message is above the queue's
MaximumMessageSize is stored there and sent as the extended clients' S3 pointer; without it such an
event fails. Prints one line per event, in input order, as
soon as it is known, and exits 1 if any event was not sent (an unreadable stdin line is one such
event); an expected failure (no region, no credentials, a queue that does not exist) is one line
saying what to do, and exit code 1.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import boto3

from operations.errors import hint, one_line
from publisher.client import EventPublisher, GroupId, client_config, field_group
from publisher.dispatch import DEFAULT_CONCURRENCY, Window


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(prog="sqs-publish", description="Validate events and send them to the queue.",
                             epilog="On a FIFO queue no message is sent after a later one of its group: a failed "
                             "entry is not retried once later ones of its group were accepted, and the group's "
                             "events after one that failed for good are not sent (each is reported).")  # fmt: skip
    parser.add_argument("events", nargs="*", help="events as JSON objects (default: JSON lines on stdin)")
    parser.add_argument("--queue-url", required=True, help="the QueueUrl output of the stack, or a local queue")
    parser.add_argument("--file", type=Path, help="a JSON file holding one event or a list of events")
    parser.add_argument("--endpoint-url", help="an SQS endpoint, e.g. the local moto server")
    parser.add_argument("--region", help="AWS region (default: from the environment or profile)")
    groups = parser.add_mutually_exclusive_group()
    groups.add_argument("--group-id", help="one message group id for every event (a FIFO queue needs a group)")
    groups.add_argument("--group-field", metavar="PATH",
                        help="each event's message group id from its field PATH, e.g. payload.tenant_id")  # fmt: skip
    parser.add_argument("--payload-bucket", help="S3 bucket for events above the queue's maximum message size "
                        "(the stack's payload bucket output); without it such an event fails")  # fmt: skip
    parser.add_argument("--concurrency", type=_positive, default=DEFAULT_CONCURRENCY,
                        help=f"requests in flight together, 1 to 256 (default {DEFAULT_CONCURRENCY})")  # fmt: skip
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= 256:
        raise argparse.ArgumentTypeError(f"must be between 1 and 256, not {value}")
    return value


def _read_events(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Iterator[Any]:
    """The events; stdin's lines are read lazily and passed on as JSON texts (a bad line fails alone)."""
    try:
        if args.file and args.events:
            parser.error("give events as arguments or with --file, not both")
        if args.file:
            loaded = json.loads(args.file.read_text())
            return iter(loaded if isinstance(loaded, list) else [loaded])
        if args.events:
            return iter([json.loads(text) for text in args.events])
    except (OSError, json.JSONDecodeError) as error:
        parser.error(f"cannot read events: {error}")
    return (line.strip() for line in sys.stdin if line.strip())


def _clients(args: argparse.Namespace) -> tuple[Any, Any]:
    config = client_config(args.concurrency)
    session = boto3.session.Session(region_name=args.region)
    sqs = session.client("sqs", endpoint_url=args.endpoint_url, config=config)
    s3 = session.client("s3", endpoint_url=args.endpoint_url, config=config) if args.payload_bucket else None
    return sqs, s3


def _print(results: Iterable[Any]) -> bool:
    """One line per result as it arrives; True when every event was sent."""
    sent_all = True
    for result in results:
        if result.ok:
            print(f"sent    {result.event_id}  message_id={result.message_id}", flush=True)
        else:
            sent_all = False
            print(f"FAILED  {result.event_id or '<no event_id>'}  {result.error}", flush=True)
    return sent_all


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.queue_url.endswith(".fifo") and not (args.group_id or args.group_field):
        parser.error("--group-id or --group-field is required for a FIFO queue")
    events = _read_events(args, parser)
    first = next(events, None)
    if first is None:
        parser.error("no events to publish")
    group: GroupId = field_group(args.group_field) if args.group_field else args.group_id
    try:
        sqs, s3 = _clients(args)
        publisher = EventPublisher(args.queue_url, sqs, payload_bucket=args.payload_bucket, s3=s3,
                                   window=Window(args.concurrency))  # fmt: skip
        sent_all = _print(publisher.stream(itertools.chain([first], events), group_id=group))
    except Exception as error:  # one line that says what to do, never a traceback
        print(f"{parser.prog}: {one_line(error)}{hint(error)}", file=sys.stderr)
        return 1
    return 0 if sent_all else 1


if __name__ == "__main__":
    sys.exit(main())
