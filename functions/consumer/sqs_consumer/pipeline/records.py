"""Stage 1, parse: each record becomes a ``Job`` (its event and route) or an ``Unparsed`` (its poison).

Both are the ``RecordInfo`` a handler is given, and carry the record's disposition once it is
decided (dispositions.py): one object per record, made for thousands a batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from sqs_consumer.errors import PoisonMessageError
from sqs_consumer.observability import logger
from sqs_consumer.pipeline.dispositions import Listed
from sqs_consumer.registry import RecordInfo

if TYPE_CHECKING:
    from sqs_consumer.idempotency import Claim
    from sqs_consumer.models.base import BaseEvent
    from sqs_consumer.pipeline.dispositions import Disposition
    from sqs_consumer.registry import EventRegistry, Route


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

    __slots__ = ("claim", "event", "leader", "processing_ms", "route", "started")

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

    @property
    def event_type(self) -> str:
        return self.event.event_type


class Unparsed(Item):
    """A record whose body cannot become an event: quarantined with the reason."""

    __slots__ = ("poison",)

    def __init__(self, raw: dict[str, Any], poison: PoisonMessageError, now_ms: float) -> None:
        super().__init__(raw, now_ms)
        self.poison = poison

    @property
    def event_type(self) -> str | None:
        return self.poison.event_type


def parse_records(records: list[dict[str, Any]], registry: EventRegistry, now_ms: float) -> Iterator[Item]:
    """Every record, in order, as a ``Job`` or an ``Unparsed``: one at a time, so that a record that
    succeeds can be let go before the next is parsed (a batch of 10,000 keeps no more alive than
    it must, which the garbage collector would otherwise scan again and again)."""
    validate, routes = registry.validate_json, registry.routes
    for raw in records:
        try:
            event = validate(raw["body"])
            job = Job(raw, event, routes[event.event_type], now_ms)
        except ValidationError as exc:
            yield Unparsed(raw, registry.poison(exc), now_ms)
            continue
        except Exception as exc:  # a validator's or our own bug: the record is listed, never lost
            logger.exception("Record listed after an internal error", message_id=raw.get("messageId"))
            item = Item(raw, now_ms)
            item.disposition = Listed(exc, 0)
            yield item
            continue
        yield job


def _age_ms(attributes: Mapping[str, Any], now_ms: float) -> float:
    try:
        return now_ms - int(attributes.get("SentTimestamp") or now_ms)
    except (TypeError, ValueError):  # a timestamp SQS would never send: the age is unknown, not an error
        return 0.0
