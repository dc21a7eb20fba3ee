"""Write a sample event for an event type: the SQS event exactly as Lambda delivers it, and what it gives.

    python -m local.sample_event --type TYPE --payload '{"...": "..."}' [--name NAME] [--force]
                                 [--expect success|retry|quarantine] [--shape SHAPE]
    make event TYPE=document.processed PAYLOAD='{"document_id": "doc-9"}' [EXPECT=quarantine] [SHAPE=sns]

SHAPE: sns, eventbridge, eventbridge-plain or offloaded.

Writes events/NAME.json (NAME defaults to TYPE): one record whose body follows the contract
(docs/design.md §3), with SQS's own md5 of the body, and events/NAME.expected.json: the response
and the quarantined message ids the consumer gives for it, run here with the registered handler.
`make invoke EVENT=events/NAME.json` and the tests then check both. If the handler needs AWS to
succeed, edit the expected file to what it does there.

With --shape the body is the event as an upstream service delivers it (local/shapes.py): an SNS
notification with raw delivery off (`sns`), an EventBridge event whose detail is the event
(`eventbridge`), or a plain EventBridge event whose detail is the payload and detail-type the type
(`eventbridge-plain`), or a pointer to the payload offloaded to S3 as AWS's extended clients send
it (`offloaded`: the payload is written to events/payloads/NAME.json, and put in S3 wherever the
sample runs, local/sample_payloads.py); NAME then defaults to TYPE.SHAPE.

The payload is validated against the type's model first: an invalid one is refused with the
validation error, unless a poison sample is what you want (--expect quarantine). The sample is
written only when the consumer gives it the outcome expected (success by default).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from local import sample_payloads, shapes
from operations.cli import ArgumentParser, command
from sqs_consumer.budget import Deadline
from sqs_consumer.observability import logger
from sqs_consumer.payloads import size_attribute
from sqs_consumer.pipeline import BatchConsumer
from sqs_consumer.quarantine import QuarantinedMessage
from sqs_consumer.routes import REGISTRY

EVENTS_DIR = Path(__file__).resolve().parents[1] / "events"
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:orders-queue"
SENT_AT_MS = 1_795_000_000_000


def sqs_record(body: str, event_type: str | None, *, seed: str) -> dict[str, Any]:
    """One record in the shape Lambda's event source mapping delivers (stable ids for a stable file).

    ``event_type`` is the message attribute the publisher sets; SNS (raw delivery off) and EventBridge
    set none on the SQS message.
    """
    message_id = str(uuid.uuid5(uuid.NAMESPACE_URL, seed))
    attribute: dict[str, Any] = {
        "stringValue": event_type,
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
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
        "messageAttributes": {"event_type": attribute} if event_type is not None else {},
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


def expected_outcome(event: dict[str, Any], events_dir: Path = EVENTS_DIR) -> dict[str, Any]:
    """What the consumer gives the event, offloaded payloads read from moto's S3 holding the samples'."""
    logger.setLevel("CRITICAL")  # the consumer's own lines are not what the command says
    quarantine = _Recorded()
    with sample_payloads.in_process(events_dir) as payloads:
        response = BatchConsumer(REGISTRY, quarantine, payloads=payloads).handle(event, _Context())
    return {"batchItemFailures": response["batchItemFailures"], "quarantined": quarantine.message_ids}


OUTCOMES = ("success", "retry", "quarantine")
EVENT = "event"
SAMPLE_SHAPES = (EVENT, *shapes.SHAPES)


def sample_event(
    event_type: str, payload: dict[str, Any], name: str, shape: str = EVENT, events_dir: Path = EVENTS_DIR
) -> dict[str, Any]:
    """The sample's SQS event; an offloaded one also writes its payload (events/payloads/NAME.json)."""
    event = {"event_id": f"evt_{name.replace('.', '_').replace('-', '_')}_1", "event_type": event_type,
             **_version_of(event_type), "occurred_at": "2026-11-27T10:00:00Z", "payload": payload}  # fmt: skip
    if shape == EVENT:
        body = json.dumps(event)
        return {"Records": [sqs_record(body, event_type, seed=f"sample:{name}:{body}")]}
    if shape != shapes.OFFLOADED:
        body = shapes.wrap(shape, event)
        return {"Records": [sqs_record(body, None, seed=f"sample:{name}:{body}")]}
    body, size = sample_payloads.write_payload(events_dir, name, json.dumps(event))
    record = sqs_record(body, event_type, seed=f"sample:{name}:{body}")
    # The size attribute as Lambda's event carries message attributes.
    for attribute, value in size_attribute(size).items():
        record["messageAttributes"][attribute] = {"stringValue": value["StringValue"], "stringListValues": [],
                                                  "binaryListValues": [], "dataType": value["DataType"]}  # fmt: skip
    return {"Records": [record]}


def _version_of(event_type: str) -> dict[str, int]:
    """The ``event_version`` a sample of the type's current version carries: none at version 1 (absent means 1)."""
    route = REGISTRY.routes.get(event_type)
    return {"event_version": route.version} if route is not None and route.version > 1 else {}


def outcome_of(expected: dict[str, Any]) -> str:
    if expected["quarantined"]:
        return "quarantine"
    return "retry" if expected["batchItemFailures"] else "success"


def validation_error(event_type: str, payload: dict[str, Any]) -> str | None:
    """Why the payload does not make a valid event of its type (pydantic's words), or None."""
    route = REGISTRY.routes[event_type]
    try:
        route.model.model_validate({"event_id": "evt_sample", "event_type": event_type, **_version_of(event_type),
                                    "payload": payload})  # fmt: skip
    except ValidationError as error:
        return str(error)
    return None


def write_sample(
    event_type: str, payload: dict[str, Any], name: str, directory: Path = EVENTS_DIR, shape: str = EVENT
) -> list[Path]:
    event = sample_event(event_type, payload, name, shape, directory)
    paths = [directory / f"{name}.json", directory / f"{name}.expected.json"]
    paths[0].write_text(json.dumps(event, indent=2) + "\n")
    paths[1].write_text(json.dumps(expected_outcome(event, directory), indent=2) + "\n")
    if shape == shapes.OFFLOADED:
        paths.append(directory / sample_payloads.PAYLOADS / f"{name}.json")
    return paths


@command
def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m local.sample_event", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--type", required=True, dest="event_type", help="a registered event_type")
    parser.add_argument("--payload", required=True, help="the payload, as a JSON object")
    parser.add_argument("--name", help="file name without .json (default: the type)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing sample")
    parser.add_argument(
        "--expect",
        choices=OUTCOMES,
        default="success",
        help="the outcome the sample shows (default success; quarantine: a poison sample)",
    )
    parser.add_argument("--shape", choices=SAMPLE_SHAPES, default=EVENT,
                        help="the body as an upstream service delivers it (default: the event alone)")  # fmt: skip
    args = parser.parse_args(argv)
    # `make event` passes its variables even when they are unset: an empty one is a missing one.
    example = """e.g. make event TYPE=hello PAYLOAD='{"name": "x"}'"""
    if not args.event_type.strip():
        parser.error(f"TYPE (--type) is required: one of {', '.join(sorted(REGISTRY.routes))}; {example}")
    if not args.payload.strip():
        parser.error(f"PAYLOAD (--payload) is required: the payload as a JSON object; {example}")
    try:
        payload = json.loads(args.payload)
    except json.JSONDecodeError as error:
        parser.error(f"--payload is not JSON: {error}")
    if not isinstance(payload, dict):
        parser.error("--payload must be a JSON object")
    if args.event_type not in REGISTRY:
        known = ", ".join(sorted(REGISTRY.routes))
        parser.error(f"event type {args.event_type!r} is not registered (routes.py); registered: {known}")
    name = args.name or (args.event_type if args.shape == EVENT else f"{args.event_type}.{args.shape}")
    if (EVENTS_DIR / f"{name}.json").exists() and not args.force:
        parser.error(f"events/{name}.json exists: pass --force (FORCE=1 with make) to overwrite it, or --name")
    invalid = validation_error(args.event_type, payload)
    if invalid is not None and args.expect != "quarantine":
        print(f"error: the payload is not a valid {args.event_type} event, so the consumer would quarantine it:\n"
              f"{invalid}\nFix PAYLOAD, or pass EXPECT=quarantine (--expect quarantine) to write a poison sample.",
              file=sys.stderr)  # fmt: skip
        return 2
    with tempfile.TemporaryDirectory() as scratch:  # nothing is written before the outcome is known
        got = outcome_of(expected_outcome(sample_event(args.event_type, payload, name, args.shape, Path(scratch)),
                                          Path(scratch)))  # fmt: skip
    if got != args.expect:
        print(f"error: the consumer gives this sample the outcome {got!r}, not {args.expect!r}; nothing written. "
              f"Pass EXPECT={got} if that is the sample you want.", file=sys.stderr)  # fmt: skip
        return 2
    for path in write_sample(args.event_type, payload, name, EVENTS_DIR, args.shape):
        print(f"wrote {path.relative_to(EVENTS_DIR.parent)} (outcome: {got})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
