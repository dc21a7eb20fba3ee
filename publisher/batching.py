"""Entries and the SendMessageBatch requests they go in, within SQS's limits.

A request holds at most 10 entries, and messages (body plus attributes, summed) within SQS's 1 MiB
and the queue's own maximum: a request SQS finds too long fails whole, and its page does not say
that a queue with a lower maximum takes 1 MiB in one request, so the lower bound is kept. Each
message is within the queue's maximum, or its event is offloaded to S3 and the message is a pointer. On a
FIFO queue a request holds one message group, so that requests of different groups can be in flight
together while those of one group go one after the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqs_consumer.payloads import PayloadPointer
from sqs_consumer.sqs_limits import LARGEST_MAX_MESSAGE_BYTES, message_size, utf8_size

MAX_BATCH_ENTRIES = 10
# SQS caps a whole SendMessageBatch request at 1 MiB (1,048,576 bytes), whatever the queue's maximum.
MAX_BATCH_BYTES = LARGEST_MAX_MESSAGE_BYTES

Attributes = dict[str, dict[str, str]]


@dataclass(frozen=True, slots=True)
class Entry:
    """One event as SQS will receive it: its body is the event, or a pointer to it in S3."""

    index: int  # the event's place in the input, which orders the results
    event_id: str
    body: str
    attributes: Attributes
    group_id: str | None = None
    # Set when the event is offloaded: the event itself, to store at ``pointer`` before the send.
    payload: str | None = None
    pointer: PayloadPointer | None = None
    # The X-Ray trace header sent as the message's AWSTraceHeader system attribute: SQS counts it
    # neither in the message's size nor among its 10 message attributes.
    trace_header: str | None = None

    # Counted once, read several times: what the message counts against SQS's limits (body plus
    # attributes), and what the entry keeps in memory until it is sent (body plus offloaded event).
    size: int = field(init=False, repr=False)
    held_bytes: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", message_size(self.body, self.attributes))
        held = utf8_size(self.body) + (utf8_size(self.payload) if self.payload is not None else 0)
        object.__setattr__(self, "held_bytes", held)


@dataclass(slots=True)
class Batch:
    """The entries of one SendMessageBatch request."""

    group_id: str | None
    max_bytes: int = MAX_BATCH_BYTES
    entries: list[Entry] = field(default_factory=list)
    size: int = 0

    def fits(self, entry: Entry) -> bool:
        return len(self.entries) < MAX_BATCH_ENTRIES and self.size + entry.size <= self.max_bytes

    def add(self, entry: Entry) -> None:
        self.entries.append(entry)
        self.size += entry.size

    @property
    def full(self) -> bool:
        return len(self.entries) == MAX_BATCH_ENTRIES


class BatchBuilder:
    """Fills one open batch per message group on a FIFO queue (``by_group``), one in all on a standard
    queue, whose tenants' messages share requests; oldest first."""

    def __init__(self, max_bytes: int = MAX_BATCH_BYTES, *, by_group: bool = True) -> None:
        self._max_bytes = min(max_bytes, MAX_BATCH_BYTES)
        self._by_group = by_group
        self._open: dict[str | None, Batch] = {}

    def add(self, entry: Entry) -> list[Batch]:
        """Adds ``entry``; returns the batches this closed, in the order they were opened."""
        closed = []
        key = entry.group_id if self._by_group else None
        batch = self._open.get(key)
        if batch is not None and not batch.fits(entry):
            closed.append(self._open.pop(key))
            batch = None
        if batch is None:
            batch = self._open[key] = Batch(key, self._max_bytes)
        batch.add(entry)
        if batch.full:
            closed.append(self._open.pop(key))
        return closed

    def has_open(self) -> bool:
        return bool(self._open)

    def close_oldest(self) -> Batch | None:
        """The open batch holding the earliest event, closed; None when none is open."""
        if not self._open:
            return None
        return self._open.pop(next(iter(self._open)))

    def close_all(self) -> list[Batch]:
        closed = list(self._open.values())
        self._open.clear()
        return closed
