"""The rules that pick each record's disposition (dispositions.py) from what happened to it.

Decided from facts, never from the pipeline's record classes: the record's ``RecordInfo`` (its
receive count against ``maxReceiveCount``), the error or the poison, the event, the retry backoff.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqs_consumer.errors import (
    DeadlineReachedError,
    DependencyUnavailable,
    HandlerUnfinishedError,
    NonRetryableError,
    UnknownEventVersionError,
    describe,
)
from sqs_consumer.idempotency.port import REUSED_REASON, EventInProgressError
from sqs_consumer.kinds import QuarantineKind
from sqs_consumer.models.record import RecordInfo
from sqs_consumer.observability import Outcome
from sqs_consumer.pipeline.dispositions import Listed, Quarantined, Resent
from sqs_consumer.retry import MAX_BACKOFF_SECONDS, Backoff

if TYPE_CHECKING:
    from sqs_consumer.errors import PoisonMessageError
    from sqs_consumer.models.base import BaseEvent

NEAR_TIMEOUT = "the function was close to its timeout"
# A record waiting for its dependency is sent again this many receives before its last: SQS counts every
# receive, also one the function never sees (a poller's receive as the mapping pauses, an invocation lost),
# and such a receive must not be the one SQS moves the record to the DLQ on.
SPARE_RECEIVES = 1
# The longest delay SQS gives a message as it is sent (DelaySeconds).
MAX_SEND_DELAY_SECONDS = 900


@dataclass(frozen=True, slots=True)
class Decisions:
    """The rules that turn what happened to a record into its disposition."""

    max_receive_count: int | None
    backoff: Backoff
    # Dependencies have breakers (dependencies/guard.py): a DependencyUnavailable is settled by them.
    breakers: bool = False

    def last_receive(self, info: RecordInfo) -> bool:
        return self.max_receive_count is not None and info.receive_count >= self.max_receive_count

    def resend_due(self, info: RecordInfo) -> bool:
        """A record waiting for its dependency has used its receives but the spare one (``SPARE_RECEIVES``)."""
        return self.max_receive_count is not None and info.receive_count >= self.max_receive_count - SPARE_RECEIVES

    def failure(self, info: RecordInfo, exc: Exception, event_type: str | None) -> Listed | Quarantined:
        """A non-retryable error, or any error on the last receive, is quarantined; others are listed."""
        if isinstance(exc, NonRetryableError):
            return self._quarantined(info, QuarantineKind.NON_RETRYABLE, describe(exc, typed=False), event_type)
        if self.breakers and isinstance(exc, DependencyUnavailable):
            # Listed for now, even on the last receive: once the batch's failures are counted, the breakers
            # send it again (its breaker open) or quarantine it (closed) (dependencies/guard.py).
            return Listed(exc, self.unavailable_delay(info, exc))
        return self.exhausted(info, exc, event_type)

    def exhausted(self, info: RecordInfo, exc: Exception, event_type: str | None) -> Listed | Quarantined:
        """A retryable failure: quarantined on the last receive, listed after its backoff before it."""
        if self.last_receive(info):
            if isinstance(exc, UnknownEventVersionError):
                reason = f"{describe(exc, typed=False)}, on each of {info.receive_count} receive(s)"
                return self._quarantined(info, QuarantineKind.UNKNOWN_EVENT_VERSION, reason, event_type)
            reason = f"failed on each of {info.receive_count} receive(s); last error: {describe(exc)}"
            return self._quarantined(info, QuarantineKind.RETRIES_EXHAUSTED, reason, event_type)
        delay = self.backoff.delay(info.receive_count)
        if isinstance(exc, (EventInProgressError, HandlerUnfinishedError)):
            # Not before the in-progress record (another execution's, or this one's kept) expires: the
            # record must not use up its receives on it.
            delay = min(MAX_BACKOFF_SECONDS, max(delay, exc.retry_after_seconds))
        return Listed(exc, delay)

    def unavailable_delay(self, info: RecordInfo, exc: DependencyUnavailable) -> int:
        """The backoff, or what the dependency asked for (Retry-After) if longer."""
        delay = self.backoff.delay(info.receive_count)
        if exc.retry_after is not None:
            delay = max(delay, min(MAX_BACKOFF_SECONDS, math.ceil(exc.retry_after)))
        return delay

    def waiting(
        self, info: RecordInfo, exc: DependencyUnavailable, seconds: float, *, resend: bool, started: bool
    ) -> Listed | Quarantined | Resent:
        """A record of a dependency whose breaker is open: back once the next probe has run (``seconds``).
        One receive before its last (``resend_due``) it is sent again (``resend``: a standard queue), never
        quarantined for the outage; a FIFO queue's is quarantined on its last (a copy sent again would leave its
        group's order)."""
        delay = max(1, min(MAX_BACKOFF_SECONDS, math.ceil(seconds)))
        if resend and self.resend_due(info):
            return Resent(exc, min(MAX_SEND_DELAY_SECONDS, delay))
        if self.last_receive(info):
            kind = QuarantineKind.RETRIES_EXHAUSTED if started else QuarantineKind.NOT_STARTED
            reason = f"{describe(exc, typed=False)}: on the last of {info.receive_count} receive(s) of a FIFO queue"
            return Quarantined(kind, reason, getattr(info, "event_type", None), delay)
        return Listed(exc, delay, Outcome.FAILED if started else Outcome.SKIPPED)

    def not_started(self, info: RecordInfo, why: str, event_type: str | None) -> Listed | Quarantined:
        """Listed to return at once; on its last receive, quarantined with the reason it never ran."""
        if self.last_receive(info):
            reason = f"never started in {info.receive_count} receive(s); on the last one, {why}"
            return Quarantined(QuarantineKind.NOT_STARTED, reason, event_type, 0)
        return Listed(DeadlineReachedError(f"not started: {why}"), 0, Outcome.SKIPPED)

    def poison(self, info: RecordInfo, poison: PoisonMessageError) -> Quarantined:
        return self._quarantined(info, poison.kind, poison.reason, poison.event_type)

    def reused(self, info: RecordInfo, event: BaseEvent, detail: str) -> Quarantined:
        reason = f"{REUSED_REASON}: {detail} (event_id {event.event_id!r})"
        return self._quarantined(info, QuarantineKind.REUSED_EVENT_ID, reason, event.event_type)

    def _quarantined(self, info: RecordInfo, kind: str, reason: str, event_type: str | None) -> Quarantined:
        # If the DLQ refuses the copy, the record comes back after its backoff.
        return Quarantined(kind, reason, event_type, self.backoff.delay(info.receive_count))
