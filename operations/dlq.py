"""Dead-letter queue operations: peek (decoded, nothing deleted), redrive, and redrive status.

    python -m operations.dlq peek     --queue-url DLQ_URL [--max 50]
    python -m operations.dlq redrive  --dlq-arn DLQ_ARN [--destination-arn ARN] [--rate 10] [--dry-run]
    python -m operations.dlq status   --dlq-arn DLQ_ARN

Add --endpoint-url for the local moto server. Redrive uses SQS's own message move task
(StartMessageMoveTask): messages go back to their source queue (or --destination-arn)
at --rate messages per second, and a quarantined message comes back to the consumer:
fix its cause first (peek shows each one's reason).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqs_consumer.quarantine import ATTRIBUTE_PREFIX
from sqs_consumer.retry import queue_url_from_arn

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

PEEK_VISIBILITY_SECONDS = 30


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

    @property
    def quarantined(self) -> bool:
        return self.kind is not None


def decode(message: dict[str, Any]) -> DeadLetter:
    attributes = {
        name.removeprefix(ATTRIBUTE_PREFIX): value.get("StringValue")
        for name, value in message.get("MessageAttributes", {}).items()
        if name.startswith(ATTRIBUTE_PREFIX)
    }
    return DeadLetter(
        message_id=message["MessageId"],
        source_message_id=attributes.get("source_message_id") or message["MessageId"],
        body=message["Body"],
        kind=attributes.get("kind"),
        reason=attributes.get("reason"),
        event_type=attributes.get("event_type"),
        receive_count=attributes.get("receive_count") or message.get("Attributes", {}).get("ApproximateReceiveCount"),
    )


def peek(client: SQSClient, queue_url: str, limit: int = 1_000) -> list[DeadLetter]:
    """Read up to ``limit`` messages and make them visible again at once: nothing is deleted.

    Each read hides a message for a short while so the next read reaches further;
    all are then made visible again with ChangeMessageVisibility.
    """
    letters: dict[str, DeadLetter] = {}
    handles: list[str] = []
    try:
        while len(letters) < limit:
            messages = client.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=min(10, limit - len(letters)),
                VisibilityTimeout=PEEK_VISIBILITY_SECONDS,
                MessageAttributeNames=["All"],
                AttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                break
            for message in messages:
                letter = decode(dict(message))
                letters[letter.source_message_id] = letter
                handles.append(message["ReceiptHandle"])
    finally:
        for start in range(0, len(handles), 10):
            client.change_message_visibility_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                    for i, handle in enumerate(handles[start : start + 10])
                ],
            )
    return list(letters.values())


def start_redrive(client: SQSClient, dlq_arn: str, destination_arn: str | None, rate: int | None) -> str:
    params: dict[str, Any] = {"SourceArn": dlq_arn}
    if destination_arn:
        params["DestinationArn"] = destination_arn
    if rate:
        params["MaxNumberOfMessagesPerSecond"] = rate
    return client.start_message_move_task(**params)["TaskHandle"]


def redrive_status(client: SQSClient, dlq_arn: str) -> list[dict[str, Any]]:
    return [dict(task) for task in client.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=10).get("Results", [])]


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(prog="python -m operations.dlq", description=__doc__,
                             formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--endpoint-url", help="an SQS endpoint, e.g. the local moto server")
    parser.add_argument("--region", help="AWS region (default: from the environment or profile)")
    commands = parser.add_subparsers(dest="command", required=True)
    peek_parser = commands.add_parser("peek", help="show DLQ messages with their quarantine reasons; deletes nothing")
    peek_parser.add_argument("--queue-url", required=True, help="the DeadLetterQueueUrl output of the stack")
    peek_parser.add_argument("--max", type=int, default=50, help="how many messages to show (default 50)")
    peek_parser.add_argument("--json", action="store_true", help="one JSON object per line")
    redrive = commands.add_parser("redrive", help="move DLQ messages back (StartMessageMoveTask)")
    redrive.add_argument("--dlq-arn", required=True, help="the DeadLetterQueueArn output of the stack")
    redrive.add_argument("--destination-arn", help="default: each message's source queue")
    redrive.add_argument("--rate", type=int, help="messages per second (default: SQS decides)")
    redrive.add_argument("--dry-run", action="store_true", help="show what would move; start nothing")
    status = commands.add_parser("status", help="show the DLQ's recent redrive tasks")
    status.add_argument("--dlq-arn", required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if getattr(args, "max", 1) < 1 or (getattr(args, "rate", None) is not None and not 1 <= args.rate <= 500):
        parser.error("--max must be >= 1 and --rate between 1 and 500")
    import boto3  # noqa: PLC0415  # only once the arguments are valid

    client = boto3.client("sqs", endpoint_url=args.endpoint_url, region_name=args.region)
    if args.command == "peek":
        letters = peek(client, args.queue_url, args.max)
        for letter in letters:
            if args.json:
                print(json.dumps(letter.__dict__))
            else:
                why = f"{letter.kind}: {letter.reason}" if letter.quarantined else "out of retries"
                print(f"{letter.source_message_id}  {letter.event_type or '-':<20} {why}")
        kinds = Counter(letter.kind or "out_of_retries" for letter in letters)
        print(f"{len(letters)} message(s): " + ", ".join(f"{n} {k}" for k, n in kinds.most_common()), file=sys.stderr)
        return 0
    if args.command == "redrive":
        if args.dry_run:
            letters = peek(client, queue_url_from_arn(args.dlq_arn, args.endpoint_url), 1_000)
            kinds = Counter(letter.kind or "out_of_retries" for letter in letters)
            target = args.destination_arn or "each message's source queue"
            breakdown = ", ".join(f"{n} {k}" for k, n in kinds.most_common())
            rate = args.rate or "the default"
            print(f"dry run: would move {len(letters)} message(s) to {target} at {rate} msg/s: {breakdown}")
            return 0
        handle = start_redrive(client, args.dlq_arn, args.destination_arn, args.rate)
        print(f"redrive started: {handle}")
        return 0
    for task in redrive_status(client, args.dlq_arn):
        print(json.dumps(task, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
