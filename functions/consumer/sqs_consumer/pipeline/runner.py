"""Stage 3, run: each record in batch order is started, held back, or decided without its handler.

Sync handlers run inline; async handlers are awaited by a pool of ``max_concurrent_records``
workers on one event loop kept for the life of the execution environment (FIFO: each is awaited
before the next record starts). The deadline is checked at every start: a record reached within
the time reserve is not started. A handler's exception, ``BaseException`` included (but a process
exit), is contained to its record.

A handler returns ``None`` (done) or an awaitable (``inspect.isawaitable``: a coroutine, an asyncio
future or task, an object with ``__await__``), awaited as a task until its route's timeout or the
batch's handler deadline, whichever comes first, then cancelled. Anything else it returns (a
generator, an async generator, a ``concurrent.futures.Future``) is work nobody here awaits: its record
fails. A record whose handler was called is never "not started": its synchronous part ran. One that did
not finish (cut off, not awaited in time, or a wrong return) is retried with its claim kept until it
expires, since what it started may still run (docs/design.md §4).
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Awaitable, Callable, Iterable

from sqs_consumer.errors import (
    DeadlineReachedError,
    HandlerAbortedError,
    HandlerReturnError,
    HandlerTimeoutError,
    HandlerUnfinishedError,
    RateLimitedError,
    describe,
)
from sqs_consumer.followups import Outbox
from sqs_consumer.idempotency.port import ClaimState
from sqs_consumer.observability import logger
from sqs_consumer.pipeline.batch import Batch
from sqs_consumer.pipeline.claims import claimed, follow
from sqs_consumer.pipeline.decisions import NEAR_TIMEOUT, Decisions
from sqs_consumer.pipeline.dispositions import SUCCEEDED, Disposition, Listed
from sqs_consumer.pipeline.records import Item, Job, Unfetched, Unparsed

# How long leftover tasks of a handler get to finish after being cancelled, at most: out of the
# time reserve, never past the part of it kept for returning.
LEFTOVER_TASK_GRACE_SECONDS = 1.0


class Runner:
    def __init__(self, max_concurrent: int) -> None:
        self._max_concurrent = max_concurrent
        self._loop: asyncio.AbstractEventLoop | None = None

    def run(self, items: Iterable[Item], batch: Batch) -> list[Item]:
        """Give every record its disposition; the records left for the settlement: all but those whose
        sync handler succeeded (done when it returned: counted, its completion handed to the commit)."""
        suspended: list[tuple[Job, Awaitable[None]]] = []
        copies: list[Job] = []
        kept: list[Item] = []
        # Only a consumer with destinations has successes that wait for their follow-ups (read once: per record).
        emits = batch.destinations is not None
        for item in items:
            try:
                self._start(item, batch, suspended, copies)
            except Exception as exc:  # a bug in our bookkeeping: never lose the record
                _list_unsettled(item, exc, batch)
            # A success is let go, unless it waits for its follow-ups to be sent.
            if item.disposition is not SUCCEEDED or (emits and isinstance(item, Job) and item.followups):
                kept.append(item)
        if suspended:
            self._event_loop().run_until_complete(self._await_all(suspended, batch))
        for copy in copies:
            try:
                batch.decide(copy, follow(copy, batch.decisions))
            except Exception as exc:  # a bug in our bookkeeping: never lose the record
                _list_unsettled(copy, exc, batch)
        return kept

    def _start(self, item: Item, batch: Batch, suspended: list[tuple[Job, Awaitable[None]]], copies: list[Job]) -> None:
        if item.disposition is not None:  # listed when it could not be parsed (an internal error)
            batch.decide(item, item.disposition)
            return
        decisions = batch.decisions
        why = batch.order.held_back(item) if batch.order.holds_back else None
        started = batch.timer()
        if why is None and started > batch.stop_at:
            why = NEAR_TIMEOUT
        if why is not None:
            batch.decide(item, decisions.not_started(item, why, item.event_type))
            return
        if not isinstance(item, Job):  # its body or its payload could not be read into an event
            batch.decide(item, _unread(item, decisions))
            return
        if item.leader is not None:
            if batch.order.sequential:  # its leader, earlier in order, is settled already
                batch.decide(item, follow(item, decisions))
            else:
                copies.append(item)
            return
        # A claim or a rate limit may decide it before its handler; neither is there, nothing to ask (a call saved
        # per record of a batch without idempotency or limits).
        if item.claim is not None or batch.limits is not None:
            disposition = _before_call(item, batch)
            if disposition is not None:
                batch.decide(item, disposition)
                return
        awaitable = self._call(item, batch.timer() if batch.limits is not None else started, batch)
        if awaitable is None:
            return
        if batch.order.sequential:
            self._event_loop().run_until_complete(self._await_one(item, awaitable, batch))
        else:
            suspended.append((item, awaitable))

    def _call(self, job: Job, started: float, batch: Batch) -> Awaitable[None] | None:
        """The handler: a sync outcome settled now, or what remains to await."""
        if batch.debug:
            logger.debug("Record started", message_id=job.message_id, event_id=job.event.event_id,
                         event_type=job.event.event_type, trace_id=job.trace_id)  # fmt: skip
        job.started = started
        if batch.destinations is not None and batch.commit is not None and job.claim is not None:
            job.outbox = Outbox(job.event, batch.destinations, job.raw)
        try:
            result = job.route.handler(job.event, job)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # contained to its record (CancelledError included)
            batch.decide(job, batch.decisions.failure(job, _as_exception(exc), job.event.event_type))
            return None
        if result is None:
            batch.succeed(job, started)
            return None
        if inspect.isawaitable(result):
            return result
        _unfinished(job, batch, HandlerReturnError(
            f"the handler returned {_type_name(result)}, neither None nor an awaitable (a coroutine, an asyncio "
            "future or task): nothing awaited it"))  # fmt: skip
        return None

    async def _await_all(self, suspended: list[tuple[Job, Awaitable[None]]], batch: Batch) -> None:
        pending = iter(suspended)

        async def worker() -> None:
            for job, awaitable in pending:
                started = batch.timer()
                if started > batch.cut_at:  # its turn in the pool came past the handlers' deadline
                    if inspect.iscoroutine(awaitable):
                        awaitable.close()
                    _unfinished(job, batch, HandlerTimeoutError(
                        "timed out: the batch reached its handler deadline (the function was close to its timeout) "
                        "before this handler's awaitable could run; its synchronous part had run"))  # fmt: skip
                    continue
                # Within the reserve but before the handlers' deadline: awaited, since its synchronous part ran.
                job.started = started
                await self._await_one(job, awaitable, batch)

        await asyncio.gather(*(worker() for _ in range(min(self._max_concurrent, len(suspended)))))

    async def _await_one(self, job: Job, awaitable: Awaitable[None], batch: Batch) -> None:
        try:
            started = job.started if job.started is not None else batch.timer()
            limit, timeout = batch.cut_at - started, job.route.timeout_seconds
            by_route = timeout is not None and timeout < limit
            if timeout is not None and by_route:
                limit = timeout
            try:
                # A task of its own: a handler that ignores its cancellation cannot hold up the batch.
                task = asyncio.ensure_future(awaitable)
                done, _ = await asyncio.wait((task,), timeout=max(0.0, limit))
                if not done:
                    task.cancel()  # its cleanup runs while the others are awaited; leftovers at the end
                    _unfinished(job, batch, HandlerTimeoutError(
                        f"timed out: the handler did not finish within its route's timeout ({timeout:g} s); cancelled"
                        if by_route else "timed out: the handler did not finish before the batch's handler deadline "
                        "(the function was close to its timeout); cancelled"))  # fmt: skip
                    return
                task.result()
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # contained to its record (CancelledError included)
                batch.decide(job, batch.decisions.failure(job, _as_exception(exc), job.event.event_type))
            else:
                batch.succeed(job, started)
        except Exception as exc:  # a bug in our bookkeeping: never lose the record
            _list_unsettled(job, exc, batch)

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        # One loop for the life of the execution environment: creating one per
        # invocation (asyncio.run) costs more than a small batch's records.
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        return self._loop

    def cancel_leftover_tasks(self, seconds_left: Callable[[], float]) -> None:
        """Tasks a handler left running must not run on during the next invocation.

        They get ``LEFTOVER_TASK_GRACE_SECONDS`` to finish their cancellation, or less: no more than
        the time reserve has left before the part kept for returning.
        """
        if self._loop is None or self._loop.is_closed():
            return
        leftover = [task for task in asyncio.all_tasks(self._loop) if not task.done()]
        if not leftover:
            return
        for task in leftover:
            task.cancel()
        grace = min(LEFTOVER_TASK_GRACE_SECONDS, seconds_left())
        still_running: set[asyncio.Task[object]] = set(leftover)
        if grace > 0:
            _, still_running = self._loop.run_until_complete(asyncio.wait(leftover, timeout=grace))
        logger.warning("Cancelled tasks that handlers left running", tasks=len(leftover), ignored=len(still_running))
        if still_running:
            # A task that ignores cancellation: a fresh loop keeps it out of later invocations.
            self._loop = None


def _send_what_is_left(job: Job, batch: Batch) -> None:
    """A duplicate whose stored completion still holds follow-ups (its first run was killed before it sent
    them, or a send failed): sent now, and the record acknowledged only once they are."""
    claim = job.claim
    if claim is not None and claim.pending and batch.commit is not None:
        job.outbox = Outbox.stored(job.event, claim.pending, job.raw)
        batch.commit.resend(job.outbox)


def _unread(item: Item, decisions: Decisions) -> Disposition:
    if isinstance(item, Unparsed):
        return decisions.poison(item, item.poison)
    assert isinstance(item, Unfetched)
    return _unfetched(item, decisions)


def _unfetched(item: Unfetched, decisions: Decisions) -> Disposition:
    if isinstance(item.error, DeadlineReachedError):  # its payload's fetch was cut off: as a record never started
        return decisions.not_started(item, NEAR_TIMEOUT, None)
    # As its handler failing: retried, quarantined on the last receive.
    return decisions.failure(item, item.error, item.event_type)


def _before_call(job: Job, batch: Batch) -> Disposition | None:
    """What decides the job before its handler is called: its claim (a duplicate, in progress elsewhere), its
    dependencies' rates. None when the handler may run."""
    if job.claim is not None and (disposition := claimed(job, batch.decisions)) is not None:
        _send_what_is_left(job, batch)
        return disposition
    if batch.limits is not None and job.route.dependency_names:
        return _over_rate(job, batch)
    return None


def _over_rate(job: Job, batch: Batch) -> Disposition | None:
    """A token of each rate-limited dependency, waited for until records stop starting; past that, the record
    waits in the queue until its tokens have accrued (never a failure)."""
    assert batch.limits is not None
    over = batch.limits.acquire(job.route.dependency_names, batch.stop_at - batch.timer())
    if over is None:
        return None
    name, seconds = over
    error = RateLimitedError(name, "at its rate limit until the batch's time ran out")
    return batch.decisions.waiting(job, error, seconds, resend=not batch.order.sequential, started=False)


def _unfinished(job: Job, batch: Batch, error: HandlerUnfinishedError) -> None:
    """A handler that was called and did not finish: retried, its claim kept until it expires."""
    job.unfinished = True
    if job.claim is not None and job.claim.state is ClaimState.ACQUIRED:
        # The claim's in-progress record expires with the function's timeout: no retry before then.
        error.retry_after_seconds = math.ceil(batch.context.get_remaining_time_in_millis() / 1000) + 1
    batch.decide(job, batch.decisions.failure(job, error, job.event.event_type))


def _type_name(value: object) -> str:
    kind = type(value)
    module = getattr(kind, "__module__", "")
    name = kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"
    return f"an object of type {name}"


def _list_unsettled(item: Item, exc: Exception, batch: Batch) -> None:
    event_id = item.event.event_id if isinstance(item, Job) else None
    logger.exception("Record listed after an internal error", message_id=item.message_id, event_id=event_id,
                     trace_id=item.trace_id)  # fmt: skip
    batch.decide(item, Listed(exc, 0))


def _as_exception(exc: BaseException) -> Exception:
    if isinstance(exc, Exception):
        return exc
    return HandlerAbortedError(f"the handler raised {describe(exc)}")
