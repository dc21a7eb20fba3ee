"""What becomes of each record (docs/design.md §4): a value, decided once per record, acted on once.

``Succeeded`` and ``Duplicate``: deleted. ``Listed``: in ``batchItemFailures``, back after its
delay. ``Quarantined``: sent to the DLQ with its kind and reason, then deleted (listed instead if
the DLQ refuses it). ``Resent``: sent to its own queue again, then deleted (a dependency is down).
The values only: decisions.py picks one from what happened.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqs_consumer.observability import Outcome


class Succeeded:
    """The handler returned. One value for all: its processing time is on the record."""

    __slots__ = ()


class Duplicate:
    """The event was processed before (stored, or by a copy earlier in this batch)."""

    __slots__ = ()


SUCCEEDED = Succeeded()
DUPLICATE = Duplicate()


@dataclass(frozen=True, slots=True)
class Listed:
    """Retried: listed, back after ``delay_s`` (0: at once). ``outcome`` is FAILED or SKIPPED (never started)."""

    error: Exception
    delay_s: int
    outcome: Outcome = Outcome.FAILED


@dataclass(frozen=True, slots=True)
class Quarantined:
    """To the DLQ with its reason; if the DLQ refuses it, listed after ``retry_delay_s``."""

    kind: str
    reason: str
    event_type: str | None
    retry_delay_s: int


@dataclass(frozen=True, slots=True)
class Resent:
    """Sent to its queue again as a new message (the same body and attributes), visible after ``delay_s``,
    then deleted: a record whose dependency's breaker is open, on its last allowed receive
    (docs/design.md §6). If the queue refuses the copy, listed after ``delay_s`` instead."""

    error: Exception
    delay_s: int


Disposition = Succeeded | Duplicate | Listed | Quarantined | Resent
