"""Group commit: each success is written to the idempotency store as soon as its handler returns.

One write is in flight at a time, and the next one carries every completion (and release) that
arrived while it was out, as databases commit their logs. So a crash, a timeout or an out-of-memory
kill can repeat only the effects whose completion was still in flight (at most the last store round
trip or two), never those of the whole batch; and a batch of fast handlers still pays about one round
trip for all its completions: the first write carries the first success, the second all the others.
Writing at the end of the batch instead would leave every success of a killed invocation
``INPROGRESS``, to run again once the in-progress record expires (docs/decisions/016-group-commit.md has the figures).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import cache

from sqs_consumer.budget import Deadline
from sqs_consumer.errors import describe
from sqs_consumer.idempotency.port import Held, Idempotency
from sqs_consumer.models.base import BaseEvent
from sqs_consumer.observability import logger

# Writers of the group commits: one per invocation is enough; a few, so a write still running at a
# previous invocation's deadline (cut off there, finishing in the background) never delays this one's.
_WRITERS = 4


@cache
def _writers() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=_WRITERS, thread_name_prefix="group-commit")


class GroupCommit:
    """The completions and releases of one invocation, written as they come, one write in flight."""

    def __init__(self, store: Idempotency, deadline: Deadline) -> None:
        self._store = store
        self._deadline = deadline
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._completed: list[BaseEvent] = []
        self._released: list[Held] = []
        self._in_flight = 0
        self._unconfirmed = 0

    def complete(self, event: BaseEvent) -> None:
        with self._lock:
            self._completed.append(event)
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
                completed, released = self._completed, self._released
                if not completed and not released:
                    self._in_flight = 0
                    self._idle.set()
                    return
                self._completed, self._released = [], []
                self._in_flight = len(completed)
            started = time.perf_counter()
            try:
                missed = self._store.settle(completed, released, self._deadline)
            except Exception as exc:  # an adapter that raises: its completions count as unconfirmed
                logger.error("Idempotency write failed", error=describe(exc))
                missed = len(completed)
            if logger.log_level <= logging.DEBUG:  # how long a completion was on its way (crash accounting)
                logger.debug("Completions written", completed=[event.event_id for event in completed],
                             released=len(released), missed=missed,
                             ms=round((time.perf_counter() - started) * 1000, 1))  # fmt: skip
            with self._lock:
                self._unconfirmed += missed

    def wait(self) -> int:
        """Block until everything handed over is written, or the deadline; how many completions were
        not confirmed (their effects happened: their records are acknowledged anyway)."""
        self._idle.wait(self._deadline.seconds_left())
        with self._lock:
            return self._unconfirmed + self._in_flight + len(self._completed)
