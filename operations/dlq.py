"""Dead-letter queue operations: peek (decoded, nothing deleted), redrive, and status.

    sqs-dlq peek     --queue-url DLQ_URL [--max 50] [--json]
    sqs-dlq redrive  --dlq-arn DLQ_ARN [--destination-arn ARN] [--rate 10] [--dry-run]
    sqs-dlq status   --dlq-arn DLQ_ARN

(`make setup` installs sqs-dlq into .venv/bin; `python -m operations.dlq` is the same.)
--endpoint-url (the local moto server) and --region go before or after the command.

Redrive moves each message back to where it came from: a quarantined copy names its
source queue in its `quarantine.source_queue_arn` attribute; a message that reached the
DLQ through SQS's redrive goes to the DLQ's source queue (when it has one). SQS's own
message move task cannot do the first: it returns a message to its source only when SQS
moved it there, and quarantined copies arrive by SendMessage. Each message is sent to its
queue, then deleted from the DLQ (at least once: a crash in between leaves a copy in both,
which the consumer's idempotency acknowledges). A quarantined message comes back to the
consumer: fix its cause first (peek shows each one's reason).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from operations.errors import hint, one_line
from sqs_consumer.quarantine import ATTRIBUTE_PREFIX
from sqs_consumer.retry import queue_url_from_arn

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

PEEK_VISIBILITY_SECONDS = 30
REDRIVE_VISIBILITY_SECONDS = 60
# Long polling asks every SQS server; a short poll samples a few and can answer "empty" early.
WAIT_SECONDS = 2
DEFAULT_RATE = 50


@dataclass(frozen=True)
class DeadLetter:
    """A DLQ message, decoded: quarantined (with a kind and reason) or out of retries."""

    message_id: str
    source_message_id: str
    body: str
    kind: str | None
    reason: str | None
    event_type: str | None
    receive_count: str | None
    source_queue_arn: str | None = None

    @property
    def quarantined(self) -> bool:
        return self.kind is not None


def decode(message: dict[str, Any]) -> DeadLetter:
    attributes = {
        name.removeprefix(ATTRIBUTE_PREFIX): value.get("StringValue")
        for name, value in message.get("MessageAttributes", {}).items()
        if name.startswith(ATTRIBUTE_PREFIX)
    }
    source_arn = attributes.get("source_queue_arn")
    return DeadLetter(
        message_id=message["MessageId"],
        source_message_id=attributes.get("source_message_id") or message["MessageId"],
        body=message["Body"],
        kind=attributes.get("kind"),
        reason=attributes.get("reason"),
        event_type=attributes.get("event_type"),
        receive_count=attributes.get("receive_count") or message.get("Attributes", {}).get("ApproximateReceiveCount"),
        source_queue_arn=source_arn if source_arn and source_arn != "-" else None,
    )


@dataclass
class QueueCount:
    visible: int
    in_flight: int

    def describe(self) -> str:
        return f"about {self.visible} visible and {self.in_flight} in flight"


def approximate_count(client: SQSClient, queue_url: str) -> QueueCount:
    attributes = client.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return QueueCount(
        int(attributes.get("ApproximateNumberOfMessages", 0)),
        int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
    )


def _receive(client: SQSClient, queue_url: str, count: int, visibility: int, wait: int) -> list[dict[str, Any]]:
    messages = client.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=min(10, count),
        VisibilityTimeout=visibility,
        WaitTimeSeconds=wait,
        MessageAttributeNames=["All"],
        MessageSystemAttributeNames=["All"],
    ).get("Messages", [])
    return [dict(message) for message in messages]


def _release(client: SQSClient, queue_url: str, handles: Sequence[str]) -> None:
    """Make received messages visible again at once."""
    for start in range(0, len(handles), 10):
        client.change_message_visibility_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                for i, handle in enumerate(handles[start : start + 10])
            ],
        )


def peek(client: SQSClient, queue_url: str, limit: int = 1_000, wait_seconds: int = WAIT_SECONDS) -> list[DeadLetter]:
    """Read up to ``limit`` messages and make them visible again at once: nothing is deleted.

    Each read hides a message for a short while so the next read reaches further; the
    reads long-poll, so an empty answer means the queue has nothing visible left. All are
    then made visible again with ChangeMessageVisibility.
    """
    letters: dict[str, DeadLetter] = {}
    handles: list[str] = []
    try:
        while len(letters) < limit:
            messages = _receive(client, queue_url, limit - len(letters), PEEK_VISIBILITY_SECONDS, wait_seconds)
            if not messages:
                break
            for message in messages:
                letter = decode(message)
                letters[letter.source_message_id] = letter
                handles.append(message["ReceiptHandle"])
    finally:
        _release(client, queue_url, handles)
    return list(letters.values())


@dataclass
class RedriveReport:
    moved: Counter[str] = field(default_factory=Counter)  # destination ARN -> messages
    kinds: Counter[str] = field(default_factory=Counter)
    no_source: int = 0
    failed: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.moved.values())


def dead_letter_sources(client: SQSClient, dlq_url: str) -> list[str]:
    """The queues whose redrive policy targets this DLQ (their URLs)."""
    return list(client.list_dead_letter_source_queues(QueueUrl=dlq_url).get("queueUrls", []))


def redrive(
    client: SQSClient,
    dlq_url: str,
    *,
    endpoint_url: str | None = None,
    destination_arn: str | None = None,
    rate: int = DEFAULT_RATE,
    limit: int | None = None,
    dry_run: bool = False,
    wait_seconds: int = WAIT_SECONDS,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> RedriveReport:
    """Send each DLQ message back to its source queue (or ``destination_arn``), then delete it.

    At most ``rate`` messages a second. ``dry_run`` only counts where each would go.
    """
    sources = dead_letter_sources(client, dlq_url)
    fallback = sources[0] if len(sources) == 1 else None
    report = RedriveReport()
    keep: list[str] = []  # received but not moved: made visible again at the end
    started = clock()
    try:
        while limit is None or report.total + len(keep) < limit:
            wanted = 10 if limit is None else min(10, limit - report.total - len(keep))
            messages = _receive(client, dlq_url, wanted, REDRIVE_VISIBILITY_SECONDS, wait_seconds)
            if not messages:
                break
            for message in messages:
                letter = decode(message)
                arn = destination_arn or letter.source_queue_arn
                url = queue_url_from_arn(arn, endpoint_url) if arn else fallback
                if url is None:
                    report.no_source += 1
                    keep.append(message["ReceiptHandle"])
                    continue
                target = arn or url
                if dry_run:
                    report.moved[target] += 1
                    report.kinds[letter.kind or "out_of_retries"] += 1
                    keep.append(message["ReceiptHandle"])
                    continue
                error = _move(client, dlq_url, url, message)
                if error is not None:
                    report.failed.append(f"{letter.source_message_id}: {error}")
                    keep.append(message["ReceiptHandle"])
                    continue
                report.moved[target] += 1
                report.kinds[letter.kind or "out_of_retries"] += 1
                # Pace to the rate: the n-th message leaves no earlier than n / rate seconds in.
                ahead = report.total / rate - (clock() - started)
                if ahead > 0:
                    sleep(ahead)
    finally:
        _release(client, dlq_url, keep)
    return report


def _move(client: SQSClient, dlq_url: str, destination_url: str, message: dict[str, Any]) -> str | None:
    """Send one message to its destination with its own attributes, then delete it from the DLQ."""
    params: dict[str, Any] = {"QueueUrl": destination_url, "MessageBody": message["Body"]}
    originals = {
        name: {key: value[key] for key in ("DataType", "StringValue", "BinaryValue") if key in value}
        for name, value in message.get("MessageAttributes", {}).items()
        if not name.startswith(ATTRIBUTE_PREFIX)
    }
    if originals:
        params["MessageAttributes"] = originals
    if destination_url.endswith(".fifo"):
        system = message.get("Attributes", {})
        params["MessageGroupId"] = system.get("MessageGroupId") or "redrive"
        params["MessageDeduplicationId"] = message["MessageId"]
    try:
        client.send_message(**params)
    except Exception as exc:  # left in the DLQ, reported
        return one_line(exc)
    client.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
    return None


def redrive_status(client: SQSClient, dlq_arn: str) -> list[dict[str, Any]]:
    """SQS's message move tasks of this DLQ (started from the console or by SQS's API)."""
    return [dict(task) for task in client.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=10).get("Results", [])]


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    # The connection options are accepted before or after the command.
    common = _ArgumentParser(add_help=False)
    common.add_argument("--endpoint-url", default=argparse.SUPPRESS, help="an SQS endpoint, e.g. the local moto server")
    common.add_argument("--region", default=argparse.SUPPRESS, help="AWS region (default: environment or profile)")
    parser = _ArgumentParser(prog="sqs-dlq", description=__doc__, parents=[common],
                             formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True)
    peek_parser = commands.add_parser(
        "peek", parents=[common], help="show DLQ messages with their quarantine reasons; deletes nothing"
    )
    peek_parser.add_argument("--queue-url", required=True, help="the DeadLetterQueueUrl output of the stack")
    peek_parser.add_argument("--max", type=int, default=50, help="how many messages to show (default 50)")
    peek_parser.add_argument("--json", action="store_true", help="one JSON object per line")
    move = commands.add_parser("redrive", parents=[common], help="send DLQ messages back to their source queue")
    move.add_argument("--dlq-arn", required=True, help="the DeadLetterQueueArn output of the stack")
    move.add_argument("--destination-arn", help="default: each message's source queue")
    move.add_argument("--rate", type=int, default=DEFAULT_RATE, help=f"messages per second (default {DEFAULT_RATE})")
    move.add_argument("--max", type=int, help="move at most this many (default: all)")
    move.add_argument("--dry-run", action="store_true", help="show what would move; move nothing")
    status = commands.add_parser("status", parents=[common], help="the DLQ's count and its SQS move tasks")
    status.add_argument("--dlq-arn", required=True, help="the DeadLetterQueueArn output of the stack")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if getattr(args, "max", None) is not None and args.max < 1:
        parser.error("--max must be >= 1")
    if getattr(args, "rate", None) is not None and not 1 <= args.rate <= 500:
        parser.error("--rate must be between 1 and 500")
    for name in ("dlq_arn", "destination_arn"):
        value = getattr(args, name, None)
        if value is not None and (not value.startswith("arn:") or value.count(":") < 5):
            parser.error(f"--{name.replace('_', '-')} must be an SQS queue ARN (arn:aws:sqs:REGION:ACCOUNT:NAME)")
    try:
        return _run(args)
    except Exception as exc:  # one line that says what to do, never a traceback
        print(f"{parser.prog} {args.command}: {one_line(exc)}{hint(exc)}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    import boto3  # noqa: PLC0415  # only once the arguments are valid

    # botocore's own variables also point every client at another endpoint (the local pipeline).
    endpoint_url = (
        getattr(args, "endpoint_url", None)
        or os.environ.get("AWS_ENDPOINT_URL_SQS")
        or os.environ.get("AWS_ENDPOINT_URL")
    )
    client = boto3.client("sqs", endpoint_url=endpoint_url, region_name=getattr(args, "region", None))
    if args.command == "peek":
        letters = peek(client, args.queue_url, args.max)
        count = approximate_count(client, args.queue_url)
        for letter in letters:
            if args.json:
                print(json.dumps(letter.__dict__))
            else:
                why = f"{letter.kind}: {letter.reason}" if letter.quarantined else "out of retries"
                print(f"{letter.source_message_id}  {letter.event_type or '-':<20} {why}")
        kinds = Counter(letter.kind or "out_of_retries" for letter in letters)
        summary = ", ".join(f"{n} {k}" for k, n in kinds.most_common())
        print(f"{len(letters)} message(s): {summary or 'none'}; the queue holds {count.describe()}", file=sys.stderr)
        return 0
    dlq_url = queue_url_from_arn(args.dlq_arn, endpoint_url)
    if args.command == "redrive":
        report = redrive(
            client,
            dlq_url,
            endpoint_url=endpoint_url,
            destination_arn=args.destination_arn,
            rate=args.rate,
            limit=args.max,
            dry_run=args.dry_run,
        )
        targets = ", ".join(f"{n} to {arn}" for arn, n in report.moved.items()) or "nothing"
        moved_kinds = ", ".join(f"{n} {k}" for k, n in report.kinds.most_common())
        verb = "would move" if args.dry_run else "moved"
        print(f"{'dry run: ' if args.dry_run else ''}{verb} {report.total} message(s) at {args.rate} msg/s: "
              f"{targets}" + (f" ({moved_kinds})" if moved_kinds else ""))  # fmt: skip
        if report.no_source:
            print(f"{report.no_source} message(s) have no known source queue: pass --destination-arn", file=sys.stderr)
        for failure in report.failed[:20]:
            print(f"not moved: {failure}", file=sys.stderr)
        return 1 if report.failed else 0
    print(f"{args.dlq_arn}: {approximate_count(client, dlq_url).describe()}")
    try:
        tasks = redrive_status(client, args.dlq_arn)
    except Exception as exc:  # moto, and some partitions, have no move tasks
        print(f"SQS move tasks: not available from this endpoint ({one_line(exc)})")
        return 0
    for task in tasks:
        print(json.dumps(task, default=str))
    if not tasks:
        print("SQS move tasks: none")
    return 0


if __name__ == "__main__":
    sys.exit(main())
