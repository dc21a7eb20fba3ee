"""One invocation's state: its deadline, its ordering policy, its report, its group commit.

``decide`` is where a record's disposition is set, and the one place that lets go of the event's
claim when the record did not succeed (the release goes out with the group commit).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from sqs_consumer.budget import Deadline
from sqs_consumer.idempotency import ClaimState, Held
from sqs_consumer.observability import BatchReport, Outcome, logger
from sqs_consumer.pipeline.commit import GroupCommit
from sqs_consumer.pipeline.dispositions import SUCCEEDED, Decisions, Disposition, Quarantined
from sqs_consumer.pipeline.ordering import Ordering
from sqs_consumer.pipeline.records import Item, Job


class LambdaContextLike(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


class Batch:
    """What the stages of one invocation share."""

    __slots__ = ("commit", "confirm_quarantine", "context", "cut_at", "debug", "decisions", "now_ms", "order",
                 "refused", "report", "return_floor_ms", "sent", "stop_at", "timer")  # fmt: skip

    def __init__(
        self,
        context: LambdaContextLike,
        *,
        timer: Callable[[], float],
        now_ms: float,
        time_reserve_ms: int,
        return_floor_ms: int,
        decisions: Decisions,
        order: Ordering,
    ) -> None:
        self.context = context
        self.timer = timer
        self.now_ms = now_ms
        # The timer's reading past which no record starts: the time reserve before the timeout.
        # The context's clock is read once; each start is checked against the timer it reads anyway.
        start, remaining_ms = timer(), context.get_remaining_time_in_millis()
        self.stop_at = start + (remaining_ms - time_reserve_ms) / 1000
        # The handlers' deadline: async handlers still running are cancelled here, half-way through the
        # part of the reserve before the return floor; the other half is the settlement's (DLQ, backoff).
        self.cut_at = start + (remaining_ms - return_floor_ms - (time_reserve_ms - return_floor_ms) / 2) / 1000
        self.return_floor_ms = return_floor_ms
        self.decisions = decisions
        self.order = order
        self.report = BatchReport()
        self.commit: GroupCommit | None = None
        # Set where the ordering needs a quarantine confirmed before the next record starts (FIFO:
        # a copy the DLQ refuses leaves its record listed, and the rest of its group must wait).
        self.confirm_quarantine: Callable[[Item, Batch], None] | None = None
        # Records whose copy was sent to the DLQ already, and those the DLQ refused (with its error).
        self.sent: set[str] = set()
        self.refused: dict[str, Exception] = {}
        # Per-record lines are built only when they would be written.
        self.debug = logger.log_level <= logging.DEBUG

    def deadline(self, floor_ms: int | None = None) -> Deadline:
        """Calls after the records run until ``floor_ms`` before the timeout (the return floor by default)."""
        return Deadline(
            self.context.get_remaining_time_in_millis, self.return_floor_ms if floor_ms is None else floor_ms
        )

    def succeed(self, job: Job, started: float) -> None:
        """A success is acted on as its handler returns: counted, and its completion handed to the
        group commit (the one thing it needs beyond being left out of the response)."""
        job.processing_ms = processing_ms = (self.timer() - started) * 1000
        job.disposition = SUCCEEDED
        self.report.add(job.event.event_type, Outcome.SUCCEEDED, age_ms=job.age_ms, processing_ms=processing_ms)
        if self.commit is not None and job.claim is not None:
            self.commit.complete(job.event)
        if self.debug:
            logger.debug("Record succeeded", message_id=job.message_id, event_id=job.event.event_id)

    def decide(self, item: Item, disposition: Disposition) -> None:
        """Any disposition but a success: set once, seen by the ordering policy, the claim let go."""
        item.disposition = disposition
        if isinstance(item, Job) and item.started is not None and item.processing_ms is None:
            item.processing_ms = (self.timer() - item.started) * 1000
        if self.confirm_quarantine is not None and isinstance(disposition, Quarantined):
            self.confirm_quarantine(item, self)  # a refused copy turns the disposition into Listed
        self.order.finished(item, item.disposition)
        if (
            isinstance(item, Job)
            and self.commit is not None
            and item.claim is not None
            and item.claim.state is ClaimState.ACQUIRED
            and item.leader is None
            and not item.unfinished  # what it started may still run: the claim is kept until it expires
        ):
            self.commit.release(Held(item.event, item.claim.token))
