"""One invocation's state: its deadline, its ordering policy, its report, its group commit.

``decide`` is where a record's disposition is set, and the one place that lets go of the event's
claim when the record did not succeed (the release goes out with the group commit).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from sqs_consumer.budget import Deadline
from sqs_consumer.idempotency.port import ClaimState, Held
from sqs_consumer.observability import BatchReport, Outcome, logger
from sqs_consumer.pipeline.commit import GroupCommit
from sqs_consumer.pipeline.decisions import Decisions
from sqs_consumer.pipeline.dispositions import SUCCEEDED, Disposition, Quarantined
from sqs_consumer.pipeline.ordering import Ordering
from sqs_consumer.pipeline.records import Item, Job

if TYPE_CHECKING:
    from sqs_consumer.dependencies.rate import RateLimiter
    from sqs_consumer.tracing import BatchTrace


class LambdaContextLike(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


# The time kept after the records, at least: for the DLQ sends and the retry backoff until the
# return floor, and for the group commit's last write until the commit floor.
MAX_RETURN_FLOOR_MS = 500
# Completions may use the reserve further: a success the store never hears of is deleted from the
# queue while its in-progress record expires, and a producer's retry would then run it again.
MAX_COMMIT_FLOOR_MS = 100
# What a record costs after the commit floor, at one full vCPU: counting it, its share of the
# response Powertools builds, a summarised log. Measured at 10-12 us on an x86 core (`python -m
# benchmarks`: "return per listed record", 10,000 listed), kept at about 3x for arm64 cores and noise.
# Divided by the function's CPU share, it is added to both floors: a batch of 10,000 records keeps
# 2.1 s more at 256 MB, 4.1 s at 128 MB, 0.3 s at 1,769 MB; a batch of 10, 2 ms at 256 MB.
RETURN_US_PER_RECORD = 30
# Lambda gives a function one vCPU at 1,769 MB, and a share in proportion below that (0.07 at 128 MB,
# the smallest, assumed when the context does not say).
ONE_VCPU_MB = 1_769
SMALLEST_MB = 128


def cpu_share(context: object) -> float:
    """The share of a vCPU the function runs on, from its context's memory size."""
    try:
        memory_mb = int(getattr(context, "memory_limit_in_mb", SMALLEST_MB))  # a str under awslambdaric
    except (TypeError, ValueError):
        memory_mb = SMALLEST_MB
    return min(1.0, max(memory_mb, SMALLEST_MB) / ONE_VCPU_MB)


class Batch:
    """What the stages of one invocation share."""

    __slots__ = ("commit", "commit_floor_ms", "confirm_quarantine", "context", "cut_at", "debug", "decisions",
                 "destinations", "limits", "lines_until", "now_ms", "order", "refused", "report", "reserve_ms",
                 "return_floor_ms", "sent", "stop_at", "timer", "timer_start", "trace")  # fmt: skip

    def __init__(
        self,
        context: LambdaContextLike,
        *,
        timer: Callable[[], float],
        now_ms: float,
        time_reserve_ms: int,
        records: int,
        decisions: Decisions,
        order: Ordering,
    ) -> None:
        self.context = context
        self.timer = timer
        self.now_ms = now_ms
        # The timer's reading past which no record starts: the time reserve before the timeout.
        # The context's clock is read once; each start is checked against the timer it reads anyway.
        start, remaining_ms = timer(), context.get_remaining_time_in_millis()
        self.timer_start = start
        # What follows the commit floor grows with the batch (one entry of the response, one count per
        # record), and runs on the function's share of a CPU: both floors keep time for it.
        per_records_ms = math.ceil(records * RETURN_US_PER_RECORD / 1000 / cpu_share(context))
        base_ms = min(MAX_RETURN_FLOOR_MS, time_reserve_ms // 4)
        self.return_floor_ms = base_ms + per_records_ms
        self.commit_floor_ms = min(MAX_COMMIT_FLOOR_MS, base_ms) + per_records_ms
        # The time reserve, never less than the return floor it holds.
        self.reserve_ms = reserve_ms = max(time_reserve_ms, self.return_floor_ms)
        self.stop_at = start + (remaining_ms - reserve_ms) / 1000
        # The handlers' deadline: async handlers still running are cancelled here, half-way through the
        # part of the reserve before the return floor; the other half is the settlement's (DLQ, backoff).
        self.cut_at = start + (remaining_ms - self.return_floor_ms - (reserve_ms - self.return_floor_ms) / 2) / 1000
        # One log line per record that did not succeed until here; past it, one line sums up the rest.
        self.lines_until = start + (remaining_ms - self.commit_floor_ms) / 1000
        self.decisions = decisions
        self.order = order
        self.report = BatchReport()
        self.commit: GroupCommit | None = None
        # The follow-up destinations handlers may emit to (name -> queue URL), when the consumer sends any
        # (with idempotency only: follow-ups are stored with the completions until they are sent).
        self.destinations: Mapping[str, str] | None = None
        # The dependencies' rate limits (dependencies/rate.py): a record waits for its tokens before its handler.
        self.limits: RateLimiter | None = None
        # Set where the ordering needs a quarantine confirmed before the next record starts (FIFO:
        # a copy the DLQ refuses leaves its record listed, and the rest of its group must wait).
        self.confirm_quarantine: Callable[[Item, Batch], None] | None = None
        # Records whose copy was sent to the DLQ already, and those the DLQ refused (with its error).
        self.sent: set[str] = set()
        self.refused: dict[str, Exception] = {}
        # Set when the invocation is traced: each handler call becomes a subsegment (tracing.py).
        self.trace: BatchTrace | None = None
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
        outbox = job.outbox
        if outbox is not None and outbox.followups:  # acknowledged once they are sent: counted by the settlement
            assert self.commit is not None
            self.commit.complete(job.event, outbox)
        else:
            self.report.add(job.event.event_type, Outcome.SUCCEEDED, age_ms=job.age_ms, processing_ms=processing_ms)
            if self.commit is not None and job.claim is not None:
                self.commit.complete(job.event)
        if self.trace is not None:  # with follow-ups, its outcome is read when sent: their send may fail it
            self._traced(job, started, processing_ms, job if outbox is not None and outbox.followups else SUCCEEDED)
        if self.debug:
            logger.debug("Record succeeded", message_id=job.message_id, event_id=job.event.event_id,
                         trace_id=job.trace_id)  # fmt: skip

    def _traced(self, job: Job, started: float, processing_ms: float, outcome: object) -> None:
        assert self.trace is not None
        start = self.now_ms / 1000 + (started - self.timer_start)
        event = job.event
        self.trace.add(event.event_type, event.event_id, job.trace_id, (start, start + processing_ms / 1000), outcome)

    def decide(self, item: Item, disposition: Disposition) -> None:
        """Any disposition but a success: set once, seen by the ordering policy, the claim let go."""
        item.disposition = disposition
        if isinstance(item, Job) and item.started is not None and item.processing_ms is None:
            item.processing_ms = (self.timer() - item.started) * 1000
            if self.trace is not None:  # its handler was called: a subsegment, its outcome read when sent
                self._traced(item, item.started, item.processing_ms, item)
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
