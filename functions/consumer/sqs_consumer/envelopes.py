"""The shapes a body may take besides the event itself (docs/design.md §3), unwrapped to the event.

- an SNS notification (raw message delivery off): ``Message`` holds the body;
- an EventBridge event: ``detail`` is the event, or its payload (``detail-type`` its event type);
- an S3 pointer of the extended clients (payloads.py), alone or in an SNS notification: the
  payload is fetched (payload_store.py), then read as any body.

Each layer comes at most once, SNS outermost. A body that has a shape's marks but not the shape
(an SNS ``Type`` without ``Message``, an EventBridge event without ``detail``...) is poison whose
reason names the shape it resembled. Imported on the first body that is not an event alone: a
batch of events never builds these models.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sqs_consumer.errors import PoisonMessageError, describe
from sqs_consumer.payloads import announced_size, looks_like_pointer, pointer_from
from sqs_consumer.registry import INVALID_ENVELOPE, Envelope, EventRegistry

if TYPE_CHECKING:
    from sqs_consumer.models.base import BaseEvent
    from sqs_consumer.payloads import PayloadPointer

SNS = "an SNS notification"
EVENTBRIDGE = "an EventBridge event"
POINTER = "an S3 payload pointer"
# A body with one of these keys and no event_type is taken for an SNS notification or an EventBridge event.
_SNS_MARKS = ("TopicArn", "Message")
_EVENTBRIDGE_MARKS = ("detail-type", "detail")
_SNS_TYPES = ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation")


class SnsAttribute(BaseModel):
    """One of an SNS notification's MessageAttributes (a Binary value is base64 text)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    type: str = Field(alias="Type")
    value: str = Field(alias="Value")


class SnsNotification(BaseModel):
    """SNS's JSON around a message it delivers to SQS when raw message delivery is off."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    type: Literal["Notification"] = Field(alias="Type")
    message_id: str = Field(alias="MessageId", min_length=1)
    topic_arn: str = Field(alias="TopicArn", pattern=r"^arn:[^:]+:sns:")
    subject: str | None = Field(default=None, alias="Subject")
    message: str = Field(alias="Message", strict=True)
    timestamp: datetime = Field(alias="Timestamp")
    message_attributes: dict[str, SnsAttribute] = Field(default_factory=dict, alias="MessageAttributes")


class EventBridgeEvent(BaseModel):
    """An EventBridge event as a rule's SQS target receives it (no input transformer)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    version: str
    id: str = Field(min_length=1)
    detail_type: str = Field(alias="detail-type", min_length=1)
    source: str = Field(min_length=1)
    account: str
    time: datetime
    region: str
    resources: list[str]
    detail: dict[str, Any] = Field(strict=True)
    replay_name: str | None = Field(default=None, alias="replay-name")


# Reads an offloaded payload: its text, PoisonMessageError when it can never be read (quarantined),
# any other exception when a retry may succeed.
PayloadReader = Callable[[str, "PayloadPointer", "int | None"], str]

_sns = SnsNotification.model_validate
_eventbridge = EventBridgeEvent.model_validate


class Unwrapper:
    """Unwraps the bodies of one batch, reading offloaded payloads through ``read_payload``."""

    def __init__(self, registry: EventRegistry, read_payload: PayloadReader | None) -> None:
        self._registry = registry
        self._validate_json = registry.validate_json
        self._validate_python: Callable[[Any], BaseEvent] = registry.adapter.validator.validate_python
        self._read_payload = read_payload

    def unwrap(self, raw: Mapping[str, Any], refused: ValidationError, envelope: Envelope) -> BaseEvent:
        """The event in a record whose body is not an event alone (``refused`` says why), filling ``envelope``."""
        size = announced_size(raw.get("messageAttributes") or {}, "stringValue")
        return self._body(raw["messageId"], raw["body"], size, envelope, refused=refused, where="")

    def _body(
        self, message_id: str, body: str, size: str | None, envelope: Envelope, *, refused: ValidationError | None,
        where: str,
    ) -> BaseEvent:  # fmt: skip
        if refused is None:
            try:
                return self._validate_json(body)
            except ValidationError as exc:
                refused = exc
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):  # nested too deep for the decoder: malformed, as the fast path says
            raise self._poison(refused, where) from None
        if looks_like_pointer(document):
            return self._pointer(message_id, document, size, envelope, where)
        if isinstance(document, dict) and "event_type" not in document:
            if any(mark in document for mark in _SNS_MARKS) or document.get("Type") in _SNS_TYPES:
                return self._notification(message_id, document, envelope, where)
            if any(mark in document for mark in _EVENTBRIDGE_MARKS):
                return self._eventbridge(document, envelope, where)
        raise self._poison(refused, where)

    def _notification(self, message_id: str, document: dict[str, Any], envelope: Envelope, where: str) -> BaseEvent:
        if where:
            raise _half_match(SNS, f"found {where}, where SNS never puts a notification")
        if document.get("Type") in _SNS_TYPES[1:]:
            raise _subscription_message(document)
        try:
            envelope.sns = notification = _sns(document)
        except ValidationError as exc:
            raise _half_match(SNS, _detail(exc)) from None
        size = announced_size(document.get("MessageAttributes") or {}, "Value")
        return self._body(message_id, notification.message, size, envelope, refused=None,
                          where="in the SNS notification's Message")  # fmt: skip

    def _eventbridge(self, document: dict[str, Any], envelope: Envelope, where: str) -> BaseEvent:
        if envelope.eventbridge is not None:
            raise _half_match(EVENTBRIDGE, f"found {where}")
        try:
            envelope.eventbridge = event = _eventbridge(document)
        except ValidationError as exc:
            raise _half_match(EVENTBRIDGE, _detail(exc)) from None
        detail = event.detail
        if "event_type" in detail:
            shape, candidate = "detail", detail
        else:
            shape = "event {event_id: id, event_type: detail-type, payload: detail}"
            candidate = {"event_id": event.id, "event_type": event.detail_type, "payload": detail}
        try:
            return self._validate_python(candidate)
        except ValidationError as exc:
            raise self._poison(exc, f"in the EventBridge event's {shape}") from None

    def _pointer(
        self, message_id: str, document: list[Any], size: str | None, envelope: Envelope, where: str
    ) -> BaseEvent:
        if envelope.payload_pointer is not None:
            raise _half_match(POINTER, f"found {where}: a payload may not point to another")
        try:
            pointer = pointer_from(document)
        except ValueError as exc:
            what = describe(exc, typed=False).removeprefix("S3 payload pointer: ").removeprefix("S3 payload pointer ")
            raise _half_match(POINTER, what) from None
        envelope.payload_pointer = pointer
        envelope.payload_size = _byte_count(size)
        if self._read_payload is None:
            raise RuntimeError(f"offloaded payload {pointer}: this consumer reads no payloads")
        text = self._read_payload(message_id, pointer, envelope.payload_size)
        return self._body(message_id, text, None, envelope, refused=None, where=f"in the payload at {pointer}")

    def _poison(self, exc: ValidationError, where: str) -> PoisonMessageError:
        poison = self._registry.poison(exc)
        if not where:
            return poison
        return PoisonMessageError(poison.kind, f"{where}: {poison.reason}", poison.event_type)


def _half_match(shape: str, what: str) -> PoisonMessageError:
    return PoisonMessageError(INVALID_ENVELOPE, f"resembles {shape}, but {what}")


def _subscription_message(document: Mapping[str, Any]) -> PoisonMessageError:
    """SNS asks the queue to confirm a subscription another account made: it carries no event. Its reason
    says how to confirm, and the body (kept whole in the DLQ) holds the SubscribeURL."""
    url = str(document.get("SubscribeURL") or "")[:300]
    return PoisonMessageError(INVALID_ENVELOPE, (
        f"an SNS {document.get('Type')} for {str(document.get('TopicArn'))[:256]}, not a notification: it holds "
        f"no event. To confirm, open its SubscribeURL ({url or 'none given'}); subscribing from the queue's own "
        "account needs no confirmation (README: From SNS)"))  # fmt: skip


def _detail(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False, include_input=False)
    return "; ".join(f"{'.'.join(str(part) for part in error['loc']) or '<body>'}: {error['msg']}" for error in errors)


def _byte_count(size: str | None) -> int | None:
    if size is None:
        return None
    try:
        count = int(size)
    except ValueError:
        count = -1
    if count < 0:
        raise _half_match(POINTER, f"its size attribute {size[:64]!r} is not a byte count")
    return count


def pointer_in(raw: Mapping[str, Any]) -> tuple[PayloadPointer, int | None] | None:
    """The pointer a record's body carries (alone or in an SNS notification) and its announced size,
    for a prefetch: None for any other body, or one that is not quite a pointer (its parse says why).

    A hint only, it never raises: whatever a body holds (JSON nested too deep to decode, attributes
    of any type), its record's parse decides what becomes of it."""
    body = raw["body"]
    if not isinstance(body, str) or "S3Pointer" not in body:
        return None
    try:
        document = json.loads(body)
        size = announced_size(raw.get("messageAttributes") or {}, "stringValue")
        if isinstance(document, dict) and isinstance(document.get("Message"), str):
            size = announced_size(document.get("MessageAttributes") or {}, "Value")
            document = json.loads(document["Message"])
        return pointer_from(document), _byte_count(size)
    except Exception:  # a prefetch not made: the parse reads the payload, or says why not
        return None
