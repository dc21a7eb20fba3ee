"""Stage 1, parse: each record becomes a ``Job`` (its event and route) or an ``Unparsed`` (its poison).

Both are the ``RecordInfo`` a handler is given, and carry the record's disposition once it is
decided (dispositions.py): one object per record, made for thousands a batch.

A body is first validated as an event alone, the contract's own shape and the fast path. Only a body
that fails is unwrapped (envelopes.py): an SNS notification, an EventBridge event, an offloaded
payload's pointer; and a body of an older version of its event type is upcast (versions.py). The job
of an unwrapped event (``WrappedJob``) carries its envelope; a payload that could not be fetched but
may be on a retry, or a version newer than the consumer's, makes an ``Unfetched`` record, listed.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from sqs_consumer.errors import FollowUpError, PoisonMessageError, UnknownEventVersionError
from sqs_consumer.models.record import NO_ENVELOPE, Envelope, RecordInfo
from sqs_consumer.models.trace import TRACE_HEADER_ATTRIBUTE, trace_id
from sqs_consumer.observability import logger
from sqs_consumer.pipeline.dispositions import Listed

if TYPE_CHECKING:
    from sqs_consumer.budget import Deadline
    from sqs_consumer.envelopes import Unwrapper
    from sqs_consumer.followups import Outbox
    from sqs_consumer.idempotency.port import Claim
    from sqs_consumer.models.base import BaseEvent
    from sqs_consumer.payload_store import BatchPayloads, S3Payloads
    from sqs_consumer.pipeline.dispositions import Disposition
    from sqs_consumer.registry import EventRegistry, Route

E = TypeVar("E", bound=Exception)


class Item(RecordInfo):
    """A record of the batch, and the disposition it ends with (None until decided)."""

    __slots__ = ("age_ms", "disposition", "raw")

    def __init__(self, raw: dict[str, Any], now_ms: float) -> None:
        # RecordInfo's two fields, set here: calling its __init__ would cost as much again.
        self.message_id = raw["messageId"]
        self._attributes = raw.get("attributes") or {}
        # How long the message waited, from its sending to this batch's start (negative if the clocks
        # disagree: the report keeps the largest age, from 0). Without a timestamp, under a millisecond.
        self.age_ms: float = _age_ms(self._attributes, now_ms)
        self.raw = raw
        self.disposition: Disposition | None = None

    @property
    def event_type(self) -> str | None:
        return None


class Job(Item):
    """A record parsed into its event and route: its handler may run."""

    __slots__ = ("claim", "event", "leader", "outbox", "processing_ms", "route", "started", "unfinished")

    def __init__(self, raw: dict[str, Any], event: BaseEvent, route: Route[Any], now_ms: float) -> None:
        # Item's fields, set here: one call fewer for every record of every batch.
        self.message_id = raw["messageId"]
        self._attributes = raw.get("attributes") or {}
        self.age_ms = _age_ms(self._attributes, now_ms)
        self.raw = raw
        self.disposition = None
        self.event = event
        self.route = route
        # The store's answer for the event (None without idempotency, or for a copy).
        self.claim: Claim | None = None
        # The first record of this batch carrying the same event_id: a copy follows its outcome.
        self.leader: Job | None = None
        # When its handler started (the timer's reading), and how long it ran; None until then.
        self.started: float | None = None
        self.processing_ms: float | None = None
        # Its handler was called and did not finish (cut off, or it returned work not awaited here):
        # that work may still be running, so its claim is kept until it expires, never released.
        self.unfinished = False
        # The follow-ups its handler emits (set when it starts, on a consumer that declares destinations),
        # or those a duplicate's stored record still holds to send.
        self.outbox: Outbox | None = None

    def emit(self, event: BaseEvent | Mapping[str, Any], *, to: str) -> str:
        outbox = self.outbox
        if outbox is None:
            raise FollowUpError(
                "this consumer sends no follow-ups: declare the destination in the stage's followup_destinations "
                "(idempotency on: follow-ups are stored with the completion until they are sent)"
            )
        return outbox.add(event, to)

    @property
    def followups(self) -> bool:
        """Whether it has follow-ups to send: its acknowledgement then waits for them."""
        outbox = self.outbox
        return outbox is not None and bool(outbox.followups)

    @property
    def event_type(self) -> str:
        return self.event.event_type


class WrappedJob(Job):
    """A job whose event came wrapped or offloaded: its envelope is the handler's too."""

    __slots__ = ("_envelope",)

    def __init__(
        self, raw: dict[str, Any], event: BaseEvent, route: Route[Any], now_ms: float, envelope: Envelope
    ) -> None:
        super().__init__(raw, event, route, now_ms)
        self._envelope = envelope

    @property
    def envelope(self) -> Envelope:
        return self._envelope


class Unparsed(Item):
    """A record whose body cannot become an event: quarantined with the reason."""

    __slots__ = ("_envelope", "poison")

    def __init__(
        self, raw: dict[str, Any], poison: PoisonMessageError, now_ms: float, envelope: Envelope = NO_ENVELOPE
    ) -> None:
        super().__init__(raw, now_ms)
        self.poison = poison
        self._envelope = envelope

    @property
    def event_type(self) -> str | None:
        return self.poison.event_type

    @property
    def envelope(self) -> Envelope:
        return self._envelope


class Unfetched(Item):
    """A record whose body could not become an event this time but may on a retry: its offloaded payload
    could not be fetched (throttled, timed out...), or it declares a version of its event type newer than
    this consumer's (a newer one may be deploying). Listed to come back, or quarantined on its last
    receive, as a handler's failure would be."""

    __slots__ = ("_envelope", "error")

    def __init__(self, raw: dict[str, Any], error: Exception, now_ms: float, envelope: Envelope) -> None:
        super().__init__(raw, now_ms)
        self.error = error
        self._envelope = envelope

    @property
    def event_type(self) -> str | None:
        return self.error.event_type if isinstance(self.error, UnknownEventVersionError) else None

    @property
    def envelope(self) -> Envelope:
        return self._envelope


def parse_records(
    records: list[dict[str, Any]],
    registry: EventRegistry,
    now_ms: float,
    payloads: S3Payloads | None = None,
    deadline: Deadline | None = None,
) -> Iterator[Item]:
    """Every record, in order, as a ``Job`` or an ``Unparsed``: one at a time, so that a record that
    succeeds can be let go before the next is parsed (a batch of 10,000 keeps no more alive than
    it must, which the garbage collector would otherwise scan again and again).

    Offloaded payloads are read from ``payloads`` until ``deadline``; the batch's are fetched ahead
    from its first body that is not an event alone, and stopped when the iterator ends or is closed."""
    validate, routes = registry.validate_json, registry.routes
    unwrapping: tuple[Unwrapper, BatchPayloads | None] | None = None
    try:
        for raw in records:
            try:
                try:
                    event = validate(raw["body"])
                except ValidationError as exc:
                    if unwrapping is None:
                        unwrapping = _unwrapper(records, registry, payloads, deadline)
                    item: Item = _unwrapped(raw, exc, unwrapping, registry, now_ms)
                else:
                    try:  # free unless raised (3.11+): the success path pays nothing for it
                        item = Job(raw, event, routes[event.event_type], now_ms)
                    except Exception as exc:  # our own bug, its event known: named in the line
                        item = _listed_after_error(raw, exc, now_ms, event.event_id)
            except Exception as exc:  # a validator's or our own bug: the record is listed, never lost
                item = _listed_after_error(raw, exc, now_ms, None)
            yield item
    finally:  # parsed, or the batch stopped taking records: no payload read outlives the batch
        if unwrapping is not None and unwrapping[1] is not None:
            unwrapping[1].close()


def _listed_after_error(raw: dict[str, Any], exc: Exception, now_ms: float, event_id: str | None) -> Item:
    logger.exception("Record listed after an internal error", message_id=raw.get("messageId"), event_id=event_id,
                     trace_id=_trace_id(raw))  # fmt: skip
    item = Item(raw, now_ms)
    item.disposition = Listed(exc, 0)
    return item


def _unwrapper(
    records: list[dict[str, Any]], registry: EventRegistry, payloads: S3Payloads | None, deadline: Deadline | None
) -> tuple[Unwrapper, BatchPayloads | None]:
    from sqs_consumer.envelopes import Unwrapper, pointer_in  # noqa: PLC0415  # deferred: see envelopes.py

    if payloads is None:
        return Unwrapper(registry, None), None
    from sqs_consumer.budget import Deadline  # noqa: PLC0415
    from sqs_consumer.payload_store import BatchPayloads  # noqa: PLC0415

    fetches = BatchPayloads(payloads, deadline or Deadline(lambda: 900_000, 0), payloads.prefetch_bytes)
    wanted = ((raw["messageId"], found) for raw in records if (found := pointer_in(raw)) is not None)
    fetches.prefetch((message_id, pointer, size) for message_id, (pointer, size) in wanted)
    return Unwrapper(registry, fetches.read), fetches


def _unwrapped(
    raw: dict[str, Any],
    refused: ValidationError,
    unwrapping: tuple[Unwrapper, BatchPayloads | None],
    registry: EventRegistry,
    now_ms: float,
) -> Item:
    unwrapper, fetches = unwrapping
    envelope = Envelope()
    try:
        event = unwrapper.unwrap(raw, refused, envelope)
    except PoisonMessageError as poison:
        return Unparsed(raw, _let_go(poison), now_ms, envelope)
    except UnknownEventVersionError as exc:  # a newer consumer may be deploying: retried, with backoff
        return Unfetched(raw, exc, now_ms, envelope)
    except Exception as exc:  # a payload not fetched this time, or a bug: listed, never lost
        if not envelope:
            logger.exception(
                "Record listed after an internal error", message_id=raw.get("messageId"), trace_id=_trace_id(raw)
            )
        return Unfetched(raw, _let_go(exc), now_ms, envelope)
    finally:
        if fetches is not None:
            fetches.passed(raw["messageId"])
    if not envelope:  # an event alone that the fast path refused: of an older version, upcast
        return Job(raw, event, registry.routes[event.event_type], now_ms)
    return WrappedJob(raw, event, registry.routes[event.event_type], now_ms, envelope)


def _let_go(exc: E) -> E:
    """The error kept on its record until the batch ends, without the locals of the frames it went
    through (a payload's text or bytes): its traceback still says where it came from."""
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        traceback.clear_frames(error.__traceback__)
        if error.__suppress_context__:
            error.__context__ = None  # e.g. a UnicodeDecodeError, which holds the bytes it failed on
        error = error.__cause__ or error.__context__
    return exc


def _trace_id(raw: Mapping[str, Any]) -> str | None:
    attributes = raw.get("attributes")
    return trace_id(attributes.get(TRACE_HEADER_ATTRIBUTE)) if isinstance(attributes, Mapping) else None


def _age_ms(attributes: Mapping[str, Any], now_ms: float) -> float:
    try:
        return now_ms - int(attributes.get("SentTimestamp") or now_ms)
    except (TypeError, ValueError):  # a timestamp SQS would never send: the age is unknown, not an error
        return 0.0
