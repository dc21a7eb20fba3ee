"""Write a sample event for an event type: the SQS event exactly as Lambda delivers it, and what it gives.

    python -m local.sample_event --type TYPE --payload '{"...": "..."}' [--name NAME] [--force]
                                 [--expect success|retry|quarantine]
    make event TYPE=document.processed PAYLOAD='{"document_id": "doc-9"}' [EXPECT=quarantine]

Writes events/NAME.json (NAME defaults to TYPE): one record whose body follows the contract
(docs/design.md §3), with SQS's own md5 of the body, and events/NAME.expected.json: the response
and the quarantined message ids the consumer gives for it, run here with the registered handler.
`make invoke EVENT=events/NAME.json` and the tests then check both. If the handler needs AWS to
succeed, edit the expected file to what it does there.

The payload is validated against the type's model first: an invalid one is refused with the
validation error, unless a poison sample is what you want (--expect quarantine). The sample is
written only when the consumer gives it the outcome expected (success by default).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sqs_consumer.budget import Deadline
from sqs_consumer.observability import logger
from sqs_consumer.pipeline import BatchConsumer
from sqs_consumer.quarantine import QuarantinedMessage
from sqs_consumer.routes import REGISTRY

EVENTS_DIR = Path(__file__).resolve().parents[1] / "events"
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:orders-queue"
SENT_AT_MS = 1_795_000_000_000


def sqs_record(body: str, event_type: str, *, seed: str) -> dict[str, Any]:
    """One record in the shape Lambda's event source mapping delivers (stable ids for a stable file)."""
    message_id = str(uuid.uuid5(uuid.NAMESPACE_URL, seed))
    return {
        "messageId": message_id,
        "receiptHandle": f"AQEB{uuid.uuid5(uuid.NAMESPACE_OID, message_id).hex}",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": str(SENT_AT_MS),
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": str(SENT_AT_MS + 5),
        },
        "messageAttributes": {
            "event_type": {
                "stringValue": event_type,
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "String",
            }
        },
        "md5OfBody": hashlib.md5(body.encode()).hexdigest(),  # noqa: S324  # SQS's own checksum
        "eventSource": "aws:sqs",
        "eventSourceARN": QUEUE_ARN,
        "awsRegion": "us-east-1",
    }


class _Recorded:
    """Keeps what would go to the DLQ."""

    def __init__(self) -> None:
        self.message_ids: list[str] = []

    def send_batch(self, messages: Sequence[QuarantinedMessage], deadline: Deadline) -> list[Exception | None]:
        self.message_ids += [message.source_message_id for message in messages]
        return [None for _ in messages]


class _Context:
    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def expected_outcome(event: dict[str, Any]) -> dict[str, Any]:
    logger.setLevel("CRITICAL")  # the consumer's own lines are not what the command says
    quarantine = _Recorded()
    response = BatchConsumer(REGISTRY, quarantine).handle(event, _Context())
    return {"batchItemFailures": response["batchItemFailures"], "quarantined": quarantine.message_ids}


OUTCOMES = ("success", "retry", "quarantine")


def sample_event(event_type: str, payload: dict[str, Any], name: str) -> dict[str, Any]:
    body = json.dumps({"event_id": f"evt_{name.replace('.', '_')}_1", "event_type": event_type,
                       "occurred_at": "2026-11-27T10:00:00Z", "payload": payload})  # fmt: skip
    return {"Records": [sqs_record(body, event_type, seed=f"sample:{name}:{body}")]}


def outcome_of(expected: dict[str, Any]) -> str:
    if expected["quarantined"]:
        return "quarantine"
    return "retry" if expected["batchItemFailures"] else "success"


def validation_error(event: dict[str, Any]) -> str | None:
    """Why the sample's body is not a valid event of its type (pydantic's words), or None."""
    [record] = event["Records"]
    body = json.loads(record["body"])
    route = REGISTRY.routes[body["event_type"]]
    try:
        route.model.model_validate(body)
    except ValidationError as error:
        return str(error)
    return None


def write_sample(event_type: str, payload: dict[str, Any], name: str, directory: Path = EVENTS_DIR) -> list[Path]:
    event = sample_event(event_type, payload, name)
    paths = [directory / f"{name}.json", directory / f"{name}.expected.json"]
    paths[0].write_text(json.dumps(event, indent=2) + "\n")
    paths[1].write_text(json.dumps(expected_outcome(event), indent=2) + "\n")
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.sample_event", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--type", required=True, dest="event_type", help="a registered event_type")
    parser.add_argument("--payload", required=True, help="the payload, as a JSON object")
    parser.add_argument("--name", help="file name without .json (default: the type)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing sample")
    parser.add_argument("--expect", choices=OUTCOMES, default="success",
                        help="the outcome the sample shows (default success; quarantine: a poison sample)")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        payload = json.loads(args.payload)
    except json.JSONDecodeError as error:
        parser.error(f"--payload is not JSON: {error}")
    if not isinstance(payload, dict):
        parser.error("--payload must be a JSON object")
    if args.event_type not in REGISTRY:
        known = ", ".join(sorted(REGISTRY.routes))
        parser.error(f"event type {args.event_type!r} is not registered (routes.py); registered: {known}")
    name = args.name or args.event_type
    if (EVENTS_DIR / f"{name}.json").exists() and not args.force:
        parser.error(f"events/{name}.json exists: pass --force (FORCE=1 with make) to overwrite it, or --name")
    event = sample_event(args.event_type, payload, name)
    invalid = validation_error(event)
    if invalid is not None and args.expect != "quarantine":
        print(f"error: the payload is not a valid {args.event_type} event, so the consumer would quarantine it:\n"
              f"{invalid}\nFix PAYLOAD, or pass EXPECT=quarantine (--expect quarantine) to write a poison sample.",
              file=sys.stderr)  # fmt: skip
        return 2
    got = outcome_of(expected_outcome(event))
    if got != args.expect:
        print(f"error: the consumer gives this sample the outcome {got!r}, not {args.expect!r}; nothing written. "
              f"Pass EXPECT={got} if that is the sample you want.", file=sys.stderr)  # fmt: skip
        return 2
    for path in write_sample(args.event_type, payload, name, EVENTS_DIR):
        print(f"wrote {path.relative_to(EVENTS_DIR.parent)} (outcome: {got})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
