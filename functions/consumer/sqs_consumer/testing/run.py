"""Run a batch through the real consumer in memory and read what each record came to.

``run_batch`` builds the SQS event Lambda would deliver, hands it to the same ``BatchConsumer`` the
function runs (parse, claim, handler, group commit, settlement: docs/design.md §4), with in-memory
stand-ins for the DLQ, the idempotency table and S3, and returns a ``BatchResult``: each record's
disposition, keyed by its ``event_id`` (its message id when the body has none).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from sqs_consumer.models.record import RecordInfo
from sqs_consumer.pipeline import BatchConsumer
from sqs_consumer.registry import EventRegistry, Handler
from sqs_consumer.testing import events
from sqs_consumer.testing.fakes import FakeContext, InMemoryDLQ, InMemoryIdempotency, InMemoryS3, InMemorySender

Message = BaseModel | Mapping[str, Any] | str
Shape = Literal["plain", "sns", "eventbridge", "offloaded"]
Disposition = Literal["succeeded", "duplicate", "listed", "quarantined"]
PAYLOAD_BUCKET = "payload-bucket"


@dataclass(frozen=True)
class RecordOutcome:
    """What one record came to. ``kind`` and ``reason`` are set when it was quarantined (the
    ``quarantine.kind`` and ``quarantine.reason`` its DLQ copy carries)."""

    message_id: str
    event_id: str | None
    disposition: Disposition
    kind: str | None = None
    reason: str | None = None
    handler_calls: int = 0


@dataclass
class BatchResult:
    """The partial batch response and each record's outcome, in the batch's order. The views below are
    keyed by ``event_id``; two copies of one event in a batch are both in ``records``."""

    response: dict[str, Any]
    records: list[RecordOutcome]
    dlq: InMemoryDLQ
    idempotency: InMemoryIdempotency | None
    s3: InMemoryS3
    # What the handlers' follow-ups came to: sender.sent, and what the store still holds unsent.
    sender: InMemorySender | None = None
    by_id: dict[str, RecordOutcome] = field(init=False)

    def __post_init__(self) -> None:
        self.by_id = {_key(outcome): outcome for outcome in self.records}

    def __getitem__(self, event_or_message_id: str) -> RecordOutcome:
        return self.by_id[event_or_message_id]

    def _ids(self, disposition: Disposition) -> list[str]:
        return [_key(outcome) for outcome in self.records if outcome.disposition == disposition]

    @property
    def succeeded(self) -> list[str]:
        """The records whose handler returned: deleted from the queue."""
        return self._ids("succeeded")

    @property
    def duplicates(self) -> list[str]:
        """Deleted without running the handler: their event was already processed."""
        return self._ids("duplicate")

    @property
    def listed(self) -> list[str]:
        """In ``batchItemFailures``: back in the queue after their backoff."""
        return self._ids("listed")

    @property
    def quarantined(self) -> dict[str, RecordOutcome]:
        """Sent to the DLQ with their reason, then deleted."""
        return {_key(outcome): outcome for outcome in self.records if outcome.disposition == "quarantined"}


def run_batch(
    *messages: Message,
    registry: EventRegistry | None = None,
    shape: Shape = "plain",
    receive_count: int = 1,
    max_receive_count: int = 5,
    group_id: str | None = None,
    idempotency: InMemoryIdempotency | None = None,
    dlq: InMemoryDLQ | None = None,
    s3: InMemoryS3 | None = None,
    sender: InMemorySender | None = None,
    remaining_ms: int = 30_000,
) -> BatchResult:
    """Run ``messages`` (events as models or dicts, or raw bodies) as one batch through the consumer.

    ``shape`` is how they reach the queue (the event alone, in an SNS notification, an EventBridge
    event, or offloaded to S3 behind a pointer); ``receive_count`` is every record's
    ``ApproximateReceiveCount`` (``max_receive_count`` is the queue's, so the last receive quarantines);
    ``group_id`` makes it a FIFO batch of one message group. Pass the same ``idempotency`` to two runs
    to see a redelivery acknowledged as a duplicate. ``sender`` (``InMemorySender.to("billing")``) declares
    the follow-up destinations handlers may emit to and keeps what was sent (``result.sender.sent``).
    """
    registry = registry if registry is not None else _default_registry()
    dlq = dlq if dlq is not None else InMemoryDLQ()
    s3 = s3 if s3 is not None else InMemoryS3()
    idempotency = idempotency if idempotency is not None else InMemoryIdempotency()
    calls: dict[str, int] = {}
    bodies = [_body(message) for message in messages]
    records = [_record(text, event_id, index, shape=shape, receive_count=receive_count, group_id=group_id, s3=s3)
               for index, (text, event_id) in enumerate(bodies)]  # fmt: skip
    consumer = BatchConsumer(
        _counting(registry, calls),
        dlq,
        time_reserve_ms=min(5_000, remaining_ms // 4),
        max_receive_count=max_receive_count,
        idempotency=idempotency,
        payloads=_payloads(s3),
        followups=sender,
    )
    response = dict(consumer.handle(events.event(*records), FakeContext(remaining_ms=remaining_ms)))
    event_ids = [event_id for _text, event_id in bodies]
    return BatchResult(response, _outcomes(records, event_ids, response, dlq, calls), dlq, idempotency, s3, sender)


def _default_registry() -> EventRegistry:
    from sqs_consumer.routes import REGISTRY  # noqa: PLC0415 - a test may pass its own and never import the routes

    return REGISTRY


def _payloads(s3: InMemoryS3) -> Any:
    from sqs_consumer.payload_store import S3Payloads  # noqa: PLC0415 - botocore only when a test needs it

    return S3Payloads(64 * 1_048_576, client_factory=lambda _endpoint: s3)  # type: ignore[arg-type,return-value]


def _body(message: Message) -> tuple[str, str | None]:
    """The JSON body of a message, and its event_id when it has one."""
    if isinstance(message, BaseModel):
        text = message.model_dump_json()
    elif isinstance(message, str):
        text = message
    else:
        text = json.dumps(dict(message))
    try:
        document = json.loads(text)
    except ValueError:
        return text, None
    event_id = document.get("event_id") if isinstance(document, dict) else None
    return text, event_id if isinstance(event_id, str) else None


def _record(text: str, event_id: str | None, index: int, *, shape: Shape, receive_count: int, group_id: str | None,
            s3: InMemoryS3) -> dict[str, Any]:  # fmt: skip
    attributes: dict[str, Any] = {}
    if shape == "sns":
        text = events.sns_notification(text)
    elif shape == "eventbridge":
        text = events.eventbridge_event(json.loads(text))
    elif shape == "offloaded":
        key = f"payloads/{index}-{event_id or 'message'}.json"
        s3.put(PAYLOAD_BUCKET, key, text)
        attributes = events.size_attribute(len(text.encode()))
        text = events.pointer_body(PAYLOAD_BUCKET, key)
    return events.record(text, message_id=f"msg-{index + 1}", receive_count=receive_count, group_id=group_id,
                         sequence_number=index + 1, message_attributes=attributes)  # fmt: skip


def _counting(registry: EventRegistry, calls: dict[str, int]) -> EventRegistry:
    """The same routes, each handler call counted by message id (a deleted record whose handler never
    ran is a duplicate)."""

    def counted(handler: Handler[Any]) -> Handler[Any]:
        def run(event: Any, info: RecordInfo) -> Awaitable[None] | None:
            calls[info.message_id] = calls.get(info.message_id, 0) + 1
            return handler(event, info)

        return run

    return EventRegistry(
        dataclasses.replace(route, handler=counted(route.handler)) for route in registry.routes.values()
    )


def _outcomes(records: list[dict[str, Any]], event_ids: list[str | None], response: Mapping[str, Any],
              dlq: InMemoryDLQ, calls: Mapping[str, int]) -> list[RecordOutcome]:  # fmt: skip
    listed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
    quarantined = {message.source_message_id: message for message in dlq.sent}
    outcomes = []
    for record, event_id in zip(records, event_ids, strict=True):
        message_id, ran = record["messageId"], calls.get(record["messageId"], 0)
        if message_id in listed:
            outcome = RecordOutcome(message_id, event_id, "listed", handler_calls=ran)
        elif message_id in quarantined:
            copy = quarantined[message_id]
            outcome = RecordOutcome(message_id, event_id, "quarantined", copy.kind, copy.reason, ran)
        else:
            outcome = RecordOutcome(message_id, event_id, "succeeded" if ran else "duplicate", handler_calls=ran)
        outcomes.append(outcome)
    return outcomes


def _key(outcome: RecordOutcome) -> str:
    return outcome.event_id if outcome.event_id is not None else outcome.message_id
