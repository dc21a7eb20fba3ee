"""CLI: validate and publish events to the queue.

    sqs-publish --queue-url URL '{"event_id": ...}' ...
    sqs-publish --queue-url URL --file events.json       (one event, a list of events, or JSON Lines)
    some-producer | sqs-publish --queue-url URL          (JSON lines on stdin, read as they are sent)
    sqs-publish --queue-url URL --payload-bucket BUCKET ...      (offload events above the queue's maximum)
    sqs-publish --queue-url URL.fifo --group-field payload.tenant_id ...   (a FIFO group per event)
    sqs-publish --queue-url URL --tenant-field tenant_id ...      (a fair queue: MessageGroupId, the tenant)
    sqs-publish --queue-url URL --event-version 1 ...             (an older version of the events' types)

(`make setup` installs sqs-publish into .venv/bin; `python -m publisher` is the same.)
Requests go out --concurrency at a time (32 by default); on a FIFO queue one group's requests go one
after the other, in input order, and a message is never sent after a later one of its group: an entry
SQS fails is not retried once later entries of its group were accepted, and after a message of a group
fails for good the group's later events are not sent (each reported, with why). A partial batch goes
out after 50 ms without input, so a producer that pauses does not hold back what it wrote.
--payload-bucket is the stack's payload bucket output: an event whose message is above the queue's
MaximumMessageSize is stored there and sent as the extended clients' S3 pointer; without it such an
event fails.

Prints one line per event on stdout, in input order, as soon as it is known (an unreadable line of
stdin or of a JSON Lines file is one such event), then a summary on stderr (sent N, failed M), and
exits 1 if any event was not sent. A failure no event causes is one line saying what to do instead
of a line per event: a queue that does not exist, no credentials or no region stop the run before it
reads its input ("nothing sent: ..."); a refusal of every request (AccessDenied) is one line per
cause with the number of events it failed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import boto3

from operations.cli import INTERRUPTED_EXIT, ArgumentParser, command
from operations.errors import hint, hint_for, one_line
from publisher.client import EventPublisher, GroupId, client_config, field_group, tenant_group
from publisher.dispatch import DEFAULT_CONCURRENCY, Window
from sqs_consumer.models import trace
from sqs_consumer.models.trace import TraceHeader, trace_id


def _parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="sqs-publish", description="Validate events and send them to the queue.",
                             epilog="On a FIFO queue no message is sent after a later one of its group: a failed "
                             "entry is not retried once later ones of its group were accepted, and the group's "
                             "events after one that failed for good are not sent (each is reported).")  # fmt: skip
    parser.add_argument("events", nargs="*", help="events as JSON objects (default: JSON lines on stdin)")
    parser.add_argument("--queue-url", required=True, help="the QueueUrl output of the stack, or a local queue")
    parser.add_argument(
        "--file", type=Path, help="a JSON file: one event, a list of events, or JSON Lines (one event a line)"
    )
    parser.add_argument("--endpoint-url", help="an SQS endpoint, e.g. the local moto server")
    parser.add_argument("--region", help="AWS region (default: from the environment or profile)")
    groups = parser.add_mutually_exclusive_group()
    groups.add_argument("--group-id", help="one message group id for every event (a FIFO queue needs a group)")
    groups.add_argument("--group-field", metavar="PATH",
                        help="each event's message group id from its field PATH, e.g. payload.tenant_id")  # fmt: skip
    groups.add_argument("--tenant-field", metavar="FIELD",
                        help="each event's tenant, a payload field (tenant_id) or a path (payload.org.id), as "
                        "its MessageGroupId: a fair queue on a standard queue, the ordering group on FIFO")  # fmt: skip
    parser.add_argument("--event-version", type=_version, metavar="N",
                        help="send every event as version N of its type, validated as that version and stamped "
                        "with it (default: each type's current version)")  # fmt: skip
    parser.add_argument("--payload-bucket", help="S3 bucket for events above the queue's maximum message size "
                        "(the stack's payload bucket output); without it such an event fails")  # fmt: skip
    parser.add_argument(
        "--trace-header",
        type=_trace_header,
        metavar="HEADER",
        help="the X-Ray trace header (AWSTraceHeader) of every message, Root=1-...;Parent=...;"
        "Sampled=0|1 (default: the trace in _X_AMZN_TRACE_ID when set, else a new trace per event)",
    )
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


def _trace_header(text: str) -> str:
    header = TraceHeader.parse(text)
    if header is None or header.parent is None:
        shape = "Root=1-<8 hex>-<24 hex>;Parent=<16 hex>"
        raise argparse.ArgumentTypeError(f"not an X-Ray trace header ({shape}): {text!r}")
    return text


def _version(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"an event version is 1 or more, not {value}")
    return value


def _group(args: argparse.Namespace) -> GroupId:
    if args.tenant_field:
        return tenant_group(args.tenant_field)
    return field_group(args.group_field) if args.group_field else args.group_id


def _read_events(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Iterator[Any]:
    """The events; lines of stdin or of a JSON Lines file are passed on as JSON texts (a bad line fails
    alone), stdin's read lazily."""
    if args.file and args.events:
        parser.error("give events as arguments or with --file, not both")
    if args.file:
        return _read_file(args.file, parser)
    try:
        if args.events:
            return iter([json.loads(text) for text in args.events])
    except json.JSONDecodeError as error:
        parser.error(f"an event argument is not JSON: {error}")
    return (line.strip() for line in sys.stdin if line.strip())


def _read_file(path: Path, parser: argparse.ArgumentParser) -> Iterator[Any]:
    """One JSON document (an event or a list of them), or JSON Lines: a first line that is JSON
    followed by more is read one line at a time."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        parser.error(f"cannot read events from {path}: {getattr(error, 'strerror', None) or error}")
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as error:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if error.msg == "Extra data" and _is_json(lines[0]):
            return iter(lines)
        parser.error(f"cannot read events from {path}: not JSON: {error}")
    return iter(loaded if isinstance(loaded, list) else [loaded])


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


def _clients(args: argparse.Namespace) -> tuple[Any, Any]:
    config = client_config(args.concurrency)
    session = boto3.session.Session(region_name=args.region)
    sqs = session.client("sqs", endpoint_url=args.endpoint_url, config=config)
    s3 = session.client("s3", endpoint_url=args.endpoint_url, config=config) if args.payload_bucket else None
    return sqs, s3


class _Report:
    """Prints one line per event as results arrive; failures with a shared cause are counted, not printed."""

    def __init__(self, prog: str) -> None:
        self._prog = prog
        self.sent = 0
        self.failed = 0
        self._causes: Counter[str] = Counter()

    def print(self, results: Iterable[Any]) -> None:
        for result in results:
            if result.ok:
                self.sent += 1
                trace = f"  trace_id={trace_id(result.trace_header)}" if result.trace_header else ""
                print(f"sent    {result.event_id}  message_id={result.message_id}{trace}", flush=True)
                continue
            self.failed += 1
            if result.cause:
                self._causes[result.cause] += 1
            else:
                print(f"FAILED  {result.event_id or '<no event_id>'}  {result.error}", flush=True)

    def summary(self) -> None:
        for cause, count in self._causes.items():
            print(f"{self._prog}: {count} event(s) not sent: {cause}{hint_for(cause)}", file=sys.stderr)
        print(f"{self._prog}: sent {self.sent}, failed {self.failed}", file=sys.stderr)


@command
def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.queue_url.endswith(".fifo") and not (args.group_id or args.group_field or args.tenant_field):
        parser.error("--group-id, --group-field or --tenant-field is required for a FIFO queue")
    events = _read_events(args, parser)
    first = next(events, None)
    if first is None:
        parser.error("no events to publish")
    group = _group(args)
    report = _Report(parser.prog)
    try:
        sqs, s3 = _clients(args)
        publisher = EventPublisher(args.queue_url, sqs, payload_bucket=args.payload_bucket, s3=s3,
                                   window=Window(args.concurrency), event_version=args.event_version,
                                   trace_header=args.trace_header or trace.for_message)  # fmt: skip
        report.print(publisher.stream(itertools.chain([first], events), group_id=group))
    except KeyboardInterrupt:  # what was sent before the stop is known, and said in the one line
        print(f"{parser.prog}: stopped: sent {report.sent}, failed {report.failed}; the rest not sent, but for "
              "requests already in flight", file=sys.stderr)  # fmt: skip
        return INTERRUPTED_EXIT
    except BrokenPipeError:  # the reader of stdout went away: ended quietly by @command
        raise
    except Exception as error:  # one line that says what to do, never a traceback
        done = f"{report.sent} sent, then stopped" if report.sent or report.failed else "nothing sent"
        print(f"{parser.prog}: {done} to {args.queue_url}: {one_line(error)}{hint(error)}", file=sys.stderr)
        return 1
    report.summary()
    return 0 if report.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
