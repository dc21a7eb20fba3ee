"""Sending poison messages to the dead-letter queue, with the reason attached.

A quarantined record is acknowledged (deleted from the source queue) only after
the DLQ accepted the copy; a failed or unconfirmed send makes it a retryable
failure, so a message is never dropped. The copy is built to be accepted by SQS
whatever the poison looks like (sqs_limits.py): the body is sent unchanged, the
attributes keep to SQS's characters and count, and the reason is trimmed so that
body and attributes fit the DLQ's maximum message size. The sends of a batch go
out together (SendMessageBatch, in parallel) within the time reserve (budget.py).
Its SQS client is made on first use (clients.py).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqs_consumer.budget import Deadline, run_parallel
from sqs_consumer.clients import sqs_client
from sqs_consumer.errors import QuarantineFailedError, describe
from sqs_consumer.models.trace import trace_attribute, trace_id
from sqs_consumer.observability import logger
from sqs_consumer.payloads import SIZE_ATTRIBUTES
from sqs_consumer.sqs_limits import (
    DEFAULT_MAX_MESSAGE_BYTES,
    MAX_MESSAGE_ATTRIBUTES,
    attribute_size,
    deduplication_id,
    message_size,
    sqs_safe,
    trim_utf8,
    utf8_size,
)

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

ATTRIBUTE_PREFIX = "quarantine."
MAX_REASON_BYTES = 1024
MAX_EVENT_TYPE_BYTES = 256
MAX_KIND_BYTES = 64
# Where room is short, the reason is cut to no less than this (a shorter reason stays whole). A copy
# without room for its kind and this much reason is not sent: SQS refuses an empty attribute value,
# and a copy in the DLQ that cannot say why it is there is what quarantine exists to prevent.
MIN_REASON_BYTES = 16
# The room a DLQ needs above its queue's MaximumMessageSize: every quarantine attribute at its longest
# (a 1,024-byte reason, a 256-byte event type, the source queue's ARN...). A body at the queue's
# maximum then keeps its whole reason; the synth refuses a DLQ with less (infra/settings.py).
DLQ_ROOM_BYTES = 2_048
SEND_BATCH_ENTRIES = 10
_STRING = "String"
_UNKNOWN_KIND = "unknown"


@dataclass(frozen=True, slots=True)
class QuarantinedMessage:
    """A message on its way to the DLQ, and why."""

    body: str
    kind: str
    reason: str
    source_message_id: str
    source_queue_arn: str
    receive_count: int
    event_type: str | None = None
    message_group_id: str | None = None
    original_attributes: dict[str, Any] | None = None
    # The record's X-Ray trace header: the copy carries it as its own (a system attribute, outside the
    # size SQS counts and the 10 message attributes), so the DLQ copy stays in the event's trace.
    trace_header: str | None = None

    def attributes(
        self, now: datetime, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    ) -> dict[str, dict[str, Any]]:
        """SendMessage attributes that SQS accepts beside the unchanged body.

        In order of importance, each while it fits: the kind, the reason (trimmed to the room left
        beside what identifies the copy, and never dropped for another attribute), the source message
        id and receive count, the source queue, the event type, the time, then the original
        attributes. The original's own ``quarantine.*`` attributes (a copy redriven and quarantined
        again) are replaced by the new ones. No value is empty (SQS refuses one).

        Raises ``QuarantineFailedError`` when the body leaves no room for the kind and a reason of
        ``MIN_REASON_BYTES``: the record is then listed as a failure and stays on its queue, its reason
        in the log line of the refusal, and SQS's redrive is the backstop once its receives run out.
        A stack whose DLQ has ``DLQ_ROOM_BYTES`` above its queue's maximum never gets there.
        """
        kind = trim_utf8(sqs_safe(self.kind), MAX_KIND_BYTES) or _UNKNOWN_KIND
        # An empty reason would be refused; the kind is the least it can say.
        reason = sqs_safe(self.reason) or kind
        attributes = _Attributes(_room(self.body, kind, reason, max_message_bytes))
        add = attributes.add
        add("kind", kind)
        # The reason keeps room for what identifies the copy, down to its minimum, never below.
        identity = _cost("source_message_id", self.source_message_id) + _cost("receive_count", str(self.receive_count))
        floor = utf8_size(trim_utf8(reason, MIN_REASON_BYTES)) + _cost("reason", "")
        add("reason", reason, trim_to=MAX_REASON_BYTES, keep=max(0, min(identity, attributes.room - floor)))
        add("source_message_id", self.source_message_id)
        add("receive_count", str(self.receive_count))
        add("source_queue_arn", self.source_queue_arn or "-")
        if self.event_type:
            add("event_type", self.event_type, trim_to=MAX_EVENT_TYPE_BYTES)
        add("quarantined_at", now.isoformat(timespec="milliseconds"))
        dropped = _add_originals(attributes.values, self.original_attributes or {}, attributes.room)
        if dropped:
            logger.warning(
                "Original message attributes dropped on quarantine: SQS allows 10 and the size limit",
                message_id=self.source_message_id,
                trace_id=trace_id(self.trace_header),
                attributes=trim_utf8(",".join(dropped), 256),
            )
        return attributes.values


def _room(body: str, kind: str, reason: str, max_message_bytes: int) -> int:
    """The bytes the DLQ's maximum message size leaves beside ``body`` for the attributes.

    Raises ``QuarantineFailedError`` when they cannot hold the kind and a reason of ``MIN_REASON_BYTES``
    (see ``QuarantinedMessage.attributes``)."""
    body_bytes = utf8_size(body)
    room = max_message_bytes - body_bytes
    if room < 0:
        raise QuarantineFailedError(
            f"the body ({body_bytes} bytes) is larger than the DLQ's maximum message size "
            f"({max_message_bytes} bytes): raise the DLQ's MaximumMessageSize"
        )
    minimal = _cost("kind", kind) + _cost("reason", trim_utf8(reason, MIN_REASON_BYTES))
    if minimal > room:
        raise QuarantineFailedError(
            f"the body ({body_bytes} bytes) leaves {room} of the DLQ's {max_message_bytes} bytes, less than "
            f"the {minimal} its kind and reason need: give the DLQ {DLQ_ROOM_BYTES} bytes above the queue's "
            f"maximum message size ({kind}: {trim_utf8(reason, 256)})"
        )
    return room


class _Attributes:
    """A copy's quarantine attributes, each added while it fits in the room left and SQS's count."""

    __slots__ = ("room", "values")

    def __init__(self, room: int) -> None:
        self.room = room
        self.values: dict[str, dict[str, Any]] = {}

    def add(self, name: str, value: str, *, trim_to: int | None = None, keep: int = 0) -> None:
        """Add while it fits; a trimmable value is cut to the room left but ``keep`` bytes."""
        name = ATTRIBUTE_PREFIX + name
        value = sqs_safe(value)
        overhead = utf8_size(name) + len(_STRING)
        if trim_to is not None and utf8_size(value) > trim_to:
            value = trim_utf8(value, trim_to)
        if trim_to is not None and overhead + utf8_size(value) > self.room - keep:
            value = trim_utf8(value, self.room - keep - overhead)
        size = overhead + utf8_size(value)
        if value and size <= self.room and len(self.values) < MAX_MESSAGE_ATTRIBUTES:
            self.values[name] = {"DataType": _STRING, "StringValue": value}
            self.room -= size


def _cost(name: str, value: str) -> int:
    """What a quarantine attribute adds to the message size (``value`` already SQS-safe)."""
    return utf8_size(ATTRIBUTE_PREFIX + name) + len(_STRING) + utf8_size(value)


def _add_originals(attributes: dict[str, dict[str, Any]], originals: dict[str, Any], room: int) -> list[str]:
    """The original message attributes, each while it fits beside ``attributes``; the names left out.

    An offloaded payload's size attribute goes first: without it, an extended client reading the
    redriven copy would take its pointer for the message itself.
    """
    dropped = []
    ordered = sorted(originals.items(), key=lambda item: item[0] not in SIZE_ATTRIBUTES)
    for name, value in ordered:
        if name.startswith(ATTRIBUTE_PREFIX):
            continue
        converted = to_send_format(value)
        cost = attribute_size(name, converted)
        # An empty value (SQS never delivers one, a hand-made event may hold one) would be refused.
        has_value = bool(converted.get("StringValue") or converted.get("BinaryValue"))
        if has_value and len(attributes) < MAX_MESSAGE_ATTRIBUTES and cost <= room:
            attributes[name] = converted
            room -= cost
        else:
            dropped.append(name)
    return dropped


def to_send_format(value: dict[str, Any]) -> dict[str, Any]:
    """Lambda's event shape (camelCase, base64 binary) to SendMessage's."""
    converted: dict[str, Any] = {"DataType": value.get("dataType", _STRING)}
    if value.get("stringValue") is not None:
        converted["StringValue"] = value["stringValue"]
    elif value.get("binaryValue") is not None:
        converted["BinaryValue"] = base64.b64decode(value["binaryValue"])
    return converted


class Quarantine(Protocol):
    def send_batch(self, messages: Sequence[QuarantinedMessage], deadline: Deadline) -> list[Exception | None]:
        """Store each message in the DLQ: ``None`` where accepted, the error where not (same order)."""


class SqsQuarantine:
    """Sends quarantined messages to the DLQ with ``SendMessageBatch``, requests in parallel."""

    def __init__(
        self,
        queue_url: str,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        endpoint_url: str | None = None,
        client_factory: Callable[[str | None], SQSClient] = sqs_client,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._queue_url = queue_url
        self._max_message_bytes = max_message_bytes
        self._endpoint_url = endpoint_url
        self._client_factory = client_factory
        self._client: SQSClient | None = None
        self._clock = clock
        self._fifo = queue_url.endswith(".fifo")

    def send_batch(self, messages: Sequence[QuarantinedMessage], deadline: Deadline) -> list[Exception | None]:
        results: list[Exception | None] = [None] * len(messages)
        now = self._clock()
        requests: list[list[tuple[int, SendMessageBatchRequestEntryTypeDef]]] = []
        request_bytes = 0
        for index, message in enumerate(messages):
            try:
                attributes = message.attributes(now, self._max_message_bytes)
            except QuarantineFailedError as exc:
                results[index] = exc
                continue
            entry: SendMessageBatchRequestEntryTypeDef = {
                "Id": str(index),
                "MessageBody": message.body,
                "MessageAttributes": attributes,  # type: ignore[typeddict-item]
            }
            if message.trace_header:
                entry["MessageSystemAttributes"] = trace_attribute(message.trace_header)  # type: ignore[typeddict-item]
            if self._fifo:
                entry["MessageGroupId"] = message.message_group_id or "quarantine"
                # The source message id deduplicates a quarantine retried after an unconfirmed send.
                entry["MessageDeduplicationId"] = deduplication_id(message.source_message_id)
            size = message_size(message.body, attributes)
            # A request holds 10 entries at most, and no more bytes than one message may have.
            if (
                not requests
                or len(requests[-1]) == SEND_BATCH_ENTRIES
                or request_bytes + size > self._max_message_bytes
            ):
                requests.append([])
                request_bytes = 0
            requests[-1].append((index, entry))
            request_bytes += size
        if not requests:
            return results
        try:
            client = self._sqs()
        except Exception as exc:  # no client, no send: every record stays on the queue
            error = QuarantineFailedError(f"DLQ client unavailable: {describe(exc)}")
            return [error if result is None else result for result in results]
        outcomes = run_parallel([_sender(client, self._queue_url, request) for request in requests], deadline)
        for request, outcome in zip(requests, outcomes, strict=True):
            for index, _ in request:
                if isinstance(outcome, BaseException):
                    results[index] = QuarantineFailedError(f"DLQ did not accept message: {describe(outcome)}")
                else:
                    results[index] = outcome.get(index)
        return results

    def _sqs(self) -> SQSClient:
        if self._client is None:
            self._client = self._client_factory(self._endpoint_url)
        return self._client


def _sender(
    client: SQSClient, queue_url: str, request: list[tuple[int, SendMessageBatchRequestEntryTypeDef]]
) -> Callable[[], dict[int, Exception | None]]:
    def send() -> dict[int, Exception | None]:
        response = client.send_message_batch(QueueUrl=queue_url, Entries=[entry for _, entry in request])
        outcome: dict[int, Exception | None] = {int(ok["Id"]): None for ok in response.get("Successful", [])}
        for failed in response.get("Failed", []):
            outcome[int(failed["Id"])] = QuarantineFailedError(
                f"DLQ did not accept message: {failed.get('Code')}: {failed.get('Message', '')}"
            )
        for index, _ in request:
            outcome.setdefault(index, QuarantineFailedError("DLQ gave no answer for this message"))
        return outcome

    return send
