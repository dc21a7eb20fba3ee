"""Group commit: each success is written to the idempotency store as soon as its handler returns.

One write is in flight at a time, and the next one carries every completion (and release) that
arrived while it was out, as databases commit their logs. So a crash, a timeout or an out-of-memory
kill can repeat only the effects whose completion was still in flight (at most the last store round
trip or two), never those of the whole batch; and a batch of fast handlers still pays about one round
trip for all its completions: the first write carries the first success, the second all the others.
Writing at the end of the batch instead would leave every success of a killed invocation
``INPROGRESS``, to run again once the in-progress record expires (docs/decisions/016-group-commit.md has the figures).

Follow-up events (followups.py) ride the same writes: a completion carries its record's follow-ups, and
once that write is confirmed they are sent, by this same writer before its next write, which marks the
ones sent (the completion written again without them: a write of its own only when nothing else is
waiting). A duplicate's follow-ups left unsent by a crash are sent the same way. A completion that
emitted nothing costs nothing more.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import TYPE_CHECKING

from sqs_consumer.budget import Deadline
from sqs_consumer.errors import FollowUpError, describe
from sqs_consumer.idempotency.port import Held, Idempotency
from sqs_consumer.models.base import BaseEvent
from sqs_consumer.models.followups import FollowUp
from sqs_consumer.models.trace import trace_id
from sqs_consumer.observability import logger

if TYPE_CHECKING:
    from sqs_consumer.followups import FollowUpSender, Outbox

# Writers of the group commits: one per invocation is enough; a few, so a write still running at a
# previous invocation's deadline (cut off there, finishing in the background) never delays this one's.
_WRITERS = 4


@cache
def _writers() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=_WRITERS, thread_name_prefix="group-commit")


class GroupCommit:
    """The completions and releases of one invocation, written as they come, one write in flight."""

    def __init__(self, store: Idempotency, deadline: Deadline, sender: FollowUpSender | None = None) -> None:
        self._store = store
        self._deadline = deadline
        self._sender = sender
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._completed: list[BaseEvent] = []
        self._released: list[Held] = []
        # Follow-ups to store with this write's completions; to send now (stored already); sent, to mark.
        self._outboxes: list[Outbox] = []
        self._sending: list[Outbox] = []
        self._marks: list[tuple[BaseEvent, tuple[FollowUp, ...]]] = []
        self._in_flight = 0
        self._unconfirmed = 0

    def complete(self, event: BaseEvent, outbox: Outbox | None = None) -> None:
        """``event`` completed; with ``outbox``, its follow-ups are stored in the same write, then sent."""
        with self._lock:
            self._completed.append(event)
            if outbox is not None:
                self._outboxes.append(outbox)
            self._start()

    def resend(self, outbox: Outbox) -> None:
        """A duplicate's follow-ups, stored by an earlier run and not marked sent: sent, then marked."""
        with self._lock:
            self._sending.append(outbox)
            self._start()

    def release(self, held: Held) -> None:
        with self._lock:
            self._released.append(held)
            self._start()

    def _start(self) -> None:
        if self._idle.is_set():
            self._idle.clear()
            _writers().submit(self._drain)

    def _drain(self) -> None:
        while True:
            with self._lock:
                completed, released, marks = self._completed, self._released, self._marks
                outboxes, sending = self._outboxes, self._sending
                if not completed and not released and not marks and not sending:
                    self._in_flight = 0
                    self._idle.set()
                    return
                self._completed, self._released, self._marks, self._outboxes, self._sending = [], [], [], [], []
                self._in_flight = len(completed)
            if completed or released or marks:
                missed = self._write(completed, released, outboxes, marks)
                with self._lock:
                    self._unconfirmed += min(missed, len(completed))
                    self._in_flight = 0  # answered: what follows is sending, not writing
                if not missed:  # stored with their completions: now they may be sent
                    sending += outboxes
            if sending:
                self._send(sending)

    def _write(
        self,
        completed: list[BaseEvent],
        released: list[Held],
        outboxes: list[Outbox],
        marks: list[tuple[BaseEvent, tuple[FollowUp, ...]]],
    ) -> int:
        """One store write: the completions (with their follow-ups), the releases, the marks; how many of
        its completions and marks were not confirmed."""
        followups: dict[str, tuple[FollowUp, ...]] = {o.event.event_id: tuple(o.followups) for o in outboxes}
        followups.update((event.event_id, left) for event, left in marks)
        events = completed + [event for event, _ in marks]
        started = time.perf_counter()
        try:
            # Without follow-ups, the call of a store written before them (three arguments).
            if followups:
                missed = self._store.settle(events, released, self._deadline, followups=followups)
            else:
                missed = self._store.settle(events, released, self._deadline)
        except Exception as exc:  # an adapter that raises: its completions count as unconfirmed
            logger.error("Idempotency write failed", error=describe(exc))
            missed = len(events)
        if logger.log_level <= logging.DEBUG:  # how long a completion was on its way (crash accounting)
            logger.debug("Completions written", completed=[event.event_id for event in completed],
                         released=len(released), marked=[event.event_id for event, _ in marks], missed=missed,
                         ms=round((time.perf_counter() - started) * 1000, 1))  # fmt: skip
        return missed

    def _send(self, outboxes: list[Outbox]) -> None:
        """Send the follow-ups of ``outboxes``; each outbox says whether all of its own went; what went is
        marked sent by the next write."""
        followups = [followup for outbox in outboxes for followup in outbox.followups]
        results: list[Exception | None]
        if self._sender is None:
            results = [FollowUpError("no follow-up destinations are configured") for _ in followups]
        else:
            try:
                results = self._sender.send(followups, self._deadline)
            except Exception as exc:  # a sender that raises: nothing confirmed, the records are retried
                results = [exc for _ in followups]
        # One answer a follow-up; a sender that gave fewer left the rest unconfirmed.
        answers = iter([*results, *(FollowUpError("the sender gave no answer") for _ in followups)])
        for outbox in outboxes:
            errors = [next(answers) for _ in outbox.followups]
            left = tuple(f for f, error in zip(outbox.followups, errors, strict=True) if error is not None)
            outbox.error = next((error for error in errors if error is not None), None)
            if logger.log_level <= logging.DEBUG:  # when each follow-up went (crash accounting)
                logger.debug("Follow-ups sent", event_id=outbox.event.event_id, trace_id=trace_id(outbox.trace_header),
                             sent=[f.event_id for f in outbox.followups if f not in left], left=len(left))  # fmt: skip
            if len(left) < len(outbox.followups):
                with self._lock:
                    self._marks.append((outbox.event, left))
            outbox.sent = not left

    def wait(self) -> int:
        """Block until everything handed over is written, or the deadline; how many completions were
        not confirmed (their effects happened: their records are acknowledged anyway)."""
        self._idle.wait(self._deadline.seconds_left())
        with self._lock:
            return self._unconfirmed + self._in_flight + len(self._completed)
