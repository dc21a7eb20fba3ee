"""Which records may start: the one respect in which standard and FIFO queues differ.

A standard queue starts every record, and async handlers overlap. A FIFO queue keeps order
within a message group: records run one at a time, and once a record of a group is listed
(it failed, or could not be claimed), the rest of that group is held back, listed unstarted,
so that it returns in order (Powertools' ``skip_group_on_error``). A quarantined record's copy is
sent to the DLQ before the next record starts: if the DLQ refuses it, the record is listed and
its group stops there.
"""

from __future__ import annotations

from typing import Any, Protocol

from sqs_consumer.models.record import RecordInfo
from sqs_consumer.pipeline.dispositions import Disposition, Listed


class Ordering(Protocol):
    # True: each record's async handler is awaited before the next record starts.
    sequential: bool
    # False: no record is ever held back (``held_back`` need not be asked).
    holds_back: bool

    def held_back(self, info: RecordInfo) -> str | None:
        """Why this record may not start, or None."""

    def finished(self, info: RecordInfo, disposition: Disposition) -> None:
        """A record's disposition (all but successes), in batch order."""


class StandardOrder:
    sequential = False
    holds_back = False

    def held_back(self, info: RecordInfo) -> str | None:
        return None

    def finished(self, info: RecordInfo, disposition: Disposition) -> None:
        return None


class FifoOrder:
    sequential = True
    holds_back = True

    def __init__(self) -> None:
        self._failed_groups: set[str | None] = set()

    def held_back(self, info: RecordInfo) -> str | None:
        group = info.message_group_id
        if group in self._failed_groups:
            return f"behind a failed record of message group {group}"
        return None

    def finished(self, info: RecordInfo, disposition: Disposition) -> None:
        if isinstance(disposition, Listed):
            self._failed_groups.add(info.message_group_id)


def ordering_for(records: list[dict[str, Any]]) -> Ordering:
    """FIFO when the records come from a FIFO queue (its ARN ends in ``.fifo``)."""
    if str(records[0].get("eventSourceARN", "")).endswith(".fifo"):
        return FifoOrder()
    return StandardOrder()
