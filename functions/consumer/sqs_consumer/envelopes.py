"""The shapes a body may take besides the event itself (docs/design.md §3), unwrapped to the event.

- an SNS notification (raw message delivery off): ``Message`` holds the body;
- an EventBridge event: ``detail`` is the event, or its payload (``detail-type`` its event type);
- an S3 pointer of the extended clients (payloads.py), alone or in an SNS notification: the
  payload is fetched (payload_store.py), then read as any body.

Each layer comes at most once, SNS outermost. No text is parsed twice: a body that fails the fast path
(an event alone) is unwrapped from what that parse decoded (its error carries the decoded root), and an
offloaded payload is decoded once with ``json.loads`` (the least memory per byte: docs/performance.md),
after its root was seen to be a JSON object; then validated as Python objects.

Each layer comes at most once, SNS outermost. A body that has a shape's marks but not the shape
(an SNS ``Type`` without ``Message``, an EventBridge event without ``detail``...) is poison whose
reason names the shape it resembled. Imported on the first body that is not an event alone: a
batch of events never builds these models.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from pydantic import ValidationError

from sqs_consumer.errors import PoisonMessageError, describe
from sqs_consumer.kinds import QuarantineKind
from sqs_consumer.models.envelopes import EventBridgeEvent, SnsNotification
from sqs_consumer.models.record import Envelope
from sqs_consumer.payloads import (
    MAX_POINTER_BODY_CHARS,
    announced_size,
    looks_like_pointer,
    may_hold_pointer,
    pointer_from,
)
from sqs_consumer.registry import EventRegistry

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
# JSON's whitespace, before a payload's first character.
_LEADING_SPACE = re.compile(rb"[ \t\n\r]*")
# The first character of a JSON text whose root is not an object (array, string, number, literal).
_OTHER_ROOTS = frozenset(b'["-0123456789tfn')


# Reads an offloaded payload: its bytes, PoisonMessageError when it can never be read (quarantined),
# any other exception when a retry may succeed.
PayloadReader = Callable[[str, "PayloadPointer", "int | None"], bytes]

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
        upcast = self._upcast(refused, lambda: json.loads(body), where)
        if upcast is not None:
            return upcast
        document = _decoded_root(refused)
        if document is None:  # malformed JSON, or an event (it has its event_type) with invalid fields
            raise self._poison(refused, where)
        return self._document(message_id, document, size, envelope, refused, where)

    def _document(  # noqa: PLR0917  # _body's arguments, with the decoded body
        self, message_id: str, document: Any, size: str | None, envelope: Envelope, refused: ValidationError | None,
        where: str,
    ) -> BaseEvent:  # fmt: skip
        """The event in a decoded body; ``refused`` is the fast path's error, None when it did not run."""
        if looks_like_pointer(document):
            return self._pointer(message_id, document, size, envelope, where)
        if isinstance(document, dict) and "event_type" not in document:
            if any(mark in document for mark in _SNS_MARKS) or document.get("Type") in _SNS_TYPES:
                return self._notification(message_id, document, envelope, where)
            if any(mark in document for mark in _EVENTBRIDGE_MARKS):
                return self._eventbridge(document, envelope, where)
        if refused is None:
            try:
                return self._validate_python(document)
            except ValidationError as exc:
                refused = exc
            if (upcast := self._upcast(refused, lambda: document, where)) is not None:
                return upcast
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
        where = f"in the EventBridge event's {shape}"
        try:
            return self._validate_python(candidate)
        except ValidationError as exc:
            refused = exc
        if (upcast := self._upcast(refused, lambda: candidate, where)) is not None:
            return upcast
        raise self._poison(refused, where) from None

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
        where = f"in the payload at {pointer}"
        # The payload's bytes and text are let go once decoded: only its Python objects stay.
        document = self._payload(message_id, pointer, envelope.payload_size, where)
        return self._document(message_id, document, None, envelope, None, where)

    def _payload(self, message_id: str, pointer: PayloadPointer, size: int | None, where: str) -> Any:
        """A payload decoded once, its root seen to be a JSON object before (a pointer's small array aside)."""
        from sqs_consumer.payload_store import decoded  # noqa: PLC0415  # deferred: botocore's module

        assert self._read_payload is not None  # checked by the caller
        data = self._read_payload(message_id, pointer, size)
        start = _LEADING_SPACE.match(data).end()  # type: ignore[union-attr]  # matches the empty string
        first = data[start : start + 1]
        if first != b"{" and len(data) > MAX_POINTER_BODY_CHARS:
            # Never an event, nor a pointer (a payload may not point to another): refused before its parse.
            kind = (
                QuarantineKind.INVALID_ENVELOPE if first and first[0] in _OTHER_ROOTS else QuarantineKind.MALFORMED_JSON
            )
            shown = "empty" if not first else f"starts with {first.decode('latin-1')!r}"
            raise PoisonMessageError(kind, f"{where}: the payload ({len(data)} bytes, {shown}) is not a JSON "
                                     "object, as an event is")  # fmt: skip
        text = decoded(pointer, data)
        del data
        try:
            return json.loads(text)
        except ValueError as exc:
            raise PoisonMessageError(
                QuarantineKind.MALFORMED_JSON, f"{where}: Invalid JSON: {describe(exc, typed=False)}"
            ) from None
        except RecursionError:
            raise PoisonMessageError(QuarantineKind.MALFORMED_JSON, f"{where}: Invalid JSON: nested too deep") from None

    def _upcast(self, refused: ValidationError, load: Callable[[], Any], where: str) -> BaseEvent | None:
        """The event of a body refused for its version, upcast (registry.py); None when that was not why."""
        try:
            return self._registry.upcast(refused, load)
        except PoisonMessageError as poison:
            if not where:
                raise
            raise PoisonMessageError(poison.kind, f"{where}: {poison.reason}", poison.event_type) from None

    def _poison(self, exc: ValidationError, where: str) -> PoisonMessageError:
        poison = self._registry.poison(exc)
        if not where:
            return poison
        return PoisonMessageError(poison.kind, f"{where}: {poison.reason}", poison.event_type)


def _half_match(shape: str, what: str) -> PoisonMessageError:
    return PoisonMessageError(QuarantineKind.INVALID_ENVELOPE, f"resembles {shape}, but {what}")


def _subscription_message(document: Mapping[str, Any]) -> PoisonMessageError:
    """SNS asks the queue to confirm a subscription another account made: it carries no event. Its reason
    says how to confirm, and the body (kept whole in the DLQ) holds the SubscribeURL.

    Anyone allowed to send to the queue can send this shape too, so the reason an operator follows names
    the URL only when it is SNS's own confirmation link for the topic the message names; otherwise it
    says the confirmation looks forged, and names no URL."""
    kind = str(document.get("Type"))
    topic = document.get("TopicArn")
    url = document.get("SubscribeURL")
    if isinstance(topic, str) and isinstance(url, str) and _is_sns_subscribe_url(url, topic):
        return PoisonMessageError(QuarantineKind.INVALID_ENVELOPE, (
            f"an SNS {kind} for {topic}, not a notification: it holds no event. To confirm, open its "
            f"SubscribeURL ({url}); subscribing from the queue's own account needs no confirmation "
            "(README: From SNS)"))  # fmt: skip
    # A TopicArn is named only when it is one: forged text must not read as an instruction either.
    named = topic if isinstance(topic, str) and _TOPIC_ARN.fullmatch(topic) else "an invalid TopicArn"
    return PoisonMessageError(QuarantineKind.INVALID_ENVELOPE, (
        f"an SNS {kind} for {named} that looks forged: its SubscribeURL is not SNS's link confirming that "
        "topic on its region's endpoint. Do not open it; to take a topic's messages, subscribe from the "
        "queue's own account (README: From SNS)"))  # fmt: skip


# The domain of SNS's endpoints in each partition a TopicArn may name (GovCloud shares the commercial one).
_SNS_DOMAINS = {"aws": "amazonaws.com", "aws-us-gov": "amazonaws.com", "aws-cn": "amazonaws.com.cn"}
_TOPIC_ARN = re.compile(
    r"arn:(?P<partition>[a-z-]+):sns:(?P<region>[a-z]{2}(?:-[a-z]+)+-\d+):\d{12}:[\w-]{1,256}(?:\.fifo)?"
)


def _is_sns_subscribe_url(url: str, topic_arn: str) -> bool:
    """True when ``url`` is what SNS sends: https on sns.<region>.<partition's domain>, the topic's region,
    with no credentials or port (the host is the whole netloc), asking ConfirmSubscription of that very
    topic with a token."""
    topic = _TOPIC_ARN.fullmatch(topic_arn)
    if topic is None or topic["partition"] not in _SNS_DOMAINS:
        return False
    # As SNS writes it: printable ASCII, no spaces (urlsplit would drop tabs and newlines silently).
    if len(url) > 2_048 or not (url.isascii() and url.isprintable()) or " " in url:
        return False
    try:
        parts = urlsplit(url)
        query = parse_qs(parts.query, strict_parsing=True) if parts.query else {}
    except ValueError:
        return False
    host = f"sns.{topic['region']}.{_SNS_DOMAINS[topic['partition']]}"
    if parts.scheme != "https" or parts.netloc != host or parts.path not in ("", "/"):
        return False
    return (
        query.get("Action") == ["ConfirmSubscription"]
        and query.get("TopicArn") == [topic_arn]
        and len(query.get("Token", [])) == 1
        and not parts.fragment
    )


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


def _decoded_root(refused: ValidationError) -> Any:
    """The body the fast path decoded, from its own error (no second parse): None when it was not JSON, or
    was an event (it names its event_type: its field errors are the reason)."""
    for error in refused.errors(include_url=False, include_context=False):
        kind, loc = error["type"], error["loc"]
        if kind == "json_invalid":
            return None
        if loc == () or (kind == "missing" and loc == ("event_type",)):  # the root, or a root without event_type
            return error.get("input")
    return None


def pointer_in(raw: Mapping[str, Any]) -> tuple[PayloadPointer, int | None] | None:
    """The pointer a record's body carries (alone or in an SNS notification) and its announced size,
    for a prefetch: None for any other body, or one that is not quite a pointer (its parse says why).

    Recognised as the parse does (``pointer_from``), in the bodies that may hold one (``may_hold_pointer``,
    which misses none: a body over its size is read by its record's parse, with the same deadline).
    A hint only, it never raises: whatever a body holds (JSON nested too deep to decode, attributes
    of any type), its record's parse decides what becomes of it."""
    body = raw["body"]
    if not isinstance(body, str) or not may_hold_pointer(body):
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
