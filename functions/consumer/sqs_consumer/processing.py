"""Every record's disposition (docs/design.md §4), on top of the Powertools batch utility.

Delivery is at-least-once; per record, exactly one of:

- the handler returns: success, the message is deleted;
- the handler raises (any exception, or a ``BaseException`` that is not a process
  exit): retryable failure, listed in ``batchItemFailures``; it returns after its
  retry backoff (``retry.py``). On its last allowed receive (``maxReceiveCount``) it
  is quarantined instead, with the last error as its reason;
- the body cannot be parsed or validated, its type is unknown, or the handler
  raises ``NonRetryableError``: quarantined, i.e. sent to the DLQ with the reason,
  then deleted; if the DLQ refuses it, a retryable failure;
- the function is within ``time_reserve_ms`` of its timeout: not started and
  listed, so a timeout cannot redeliver records that succeeded; on its last
  allowed receive, quarantined with the reason it never ran;
- FIFO: once a record of a message group fails, the group's later records are
  listed unprocessed (``skip_group_on_error``), or quarantined on their last receive;
- with idempotency on: an event already processed is acknowledged without
  running its handler; one in progress elsewhere is retried no sooner than its
  in-progress record expires; an ``event_id`` reused with another type or payload
  is quarantined. Copies of one event within a batch run once.

The batch's work around the handlers is done together, in parallel, within the
time reserve (``budget.py``): the idempotency claims before the handlers, then the
idempotency settlements, the quarantine sends and the visibility changes of the
listed records (retry backoff). A record is never both deleted and listed:
Powertools lists exactly the records whose recorded outcome is an error.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    SqsFifoPartialProcessor,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import ValidationError

from sqs_consumer.budget import Deadline
from sqs_consumer.errors import DeadlineReachedError, HandlerAbortedError, NonRetryableError, PoisonMessageError
from sqs_consumer.idempotency import REUSED_REASON, Claim, ClaimState, EventInProgressError, Idempotency, event_data
from sqs_consumer.models.base import BaseEvent
from sqs_consumer.observability import UNRECOGNIZED_TYPE, BatchReport, EmfDocuments, Outcome, logger
from sqs_consumer.quarantine import Quarantine, QuarantinedMessage
from sqs_consumer.registry import (
    NON_RETRYABLE,
    NOT_STARTED,
    RETRIES_EXHAUSTED,
    REUSED_EVENT_ID,
    EventRegistry,
    RecordInfo,
    Route,
)
from sqs_consumer.retry import MAX_BACKOFF_SECONDS, NO_BACKOFF, Backoff, VisibilityChange, VisibilitySetter
from sqs_consumer.sqs_limits import trim_utf8

# Values quoted in log lines are cut to this many bytes: a poison body may hold megabytes.
LOG_VALUE_BYTES = 512
# The part of the time reserve kept for building the response and flushing metrics.
MAX_RETURN_FLOOR_MS = 500
# How long leftover tasks of a handler get to finish after being cancelled.
LEFTOVER_TASK_GRACE_SECONDS = 1.0
_NEAR_TIMEOUT = "the function was close to its timeout"


class LambdaContextLike(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


@dataclass(slots=True)
class _Quarantining:
    """A record on its way to the DLQ: its outcome waits for the DLQ's answer."""

    message: QuarantinedMessage
    metric_type: str
    age_ms: float
    processing_ms: float | None
    retry_delay: int


class _Job(RecordInfo):
    """A parsed record ready for its handler, and the ``RecordInfo`` that handler is given.

    One object per record rather than two: one is made for every record of every batch.
    """

    __slots__ = ("age_ms", "claimed", "event", "leader", "raw", "route", "started")

    def __init__(self, raw: dict[str, Any], event: BaseEvent, route: Route[Any], now_ms: float) -> None:
        # RecordInfo's two fields, set here: calling its __init__ would cost as much again.
        self.message_id = raw["messageId"]
        self._attributes = attributes = raw.get("attributes") or {}
        # How long the message waited, from its sending to this batch's start (negative if the clocks
        # disagree: the report keeps the largest age, from 0). Without a timestamp, under a millisecond.
        self.age_ms: float = now_ms - int(attributes.get("SentTimestamp") or now_ms)
        self.raw = raw
        self.event = event
        self.route = route
        # When its handler started (the timer's reading); None until then.
        self.started: float | None = None
        # True while this execution holds the event's in-progress idempotency record.
        self.claimed = False
        # Another record of this batch carrying the same event_id: this one follows its outcome.
        self.leader: _Job | None = None

    @property
    def record(self) -> SQSRecord:
        """Powertools' view of the record, built only on the paths that read more than the body."""
        return SQSRecord(self.raw)


@dataclass(slots=True)
class _Run:
    """One invocation: its context (for the deadline), its report and each record's outcome."""

    context: LambdaContextLike
    report: BatchReport
    # The timer's reading past which no record starts: the time reserve before the timeout.
    stop_at: float
    # Per-record lines are built only when they would be written.
    debug: bool = False
    # Wall clock (ms) at the batch's start: the records' ages are taken from it.
    now_ms: float = 0.0
    # None: deleted (succeeded, duplicate or quarantined). An exception: listed.
    outcomes: dict[str, Exception | None] = field(default_factory=dict)
    # Records whose disposition is "quarantine", until the DLQ answers.
    quarantining: dict[str, _Quarantining] = field(default_factory=dict)
    # Backoff (seconds) of each listed record that ran and failed; the others return at once.
    retry_delays: dict[str, int] = field(default_factory=dict)
    # Idempotency records to mark completed, and to release, once the handlers are done.
    completed: list[BaseEvent] = field(default_factory=list)
    released: list[BaseEvent] = field(default_factory=list)


class BatchConsumer:
    """Processes one SQS batch and returns the partial batch response."""

    def __init__(
        self,
        registry: EventRegistry,
        quarantine: Quarantine,
        *,
        metrics: Metrics | None = None,
        time_reserve_ms: int = 5_000,
        max_concurrent_records: int = 10,
        max_receive_count: int | None = None,
        backoff: Backoff = NO_BACKOFF,
        visibility: VisibilitySetter | None = None,
        idempotency: Idempotency | None = None,
        timer: Callable[[], float] = time.perf_counter,
        wall_clock_ms: Callable[[], float] = lambda: time.time() * 1000,
    ) -> None:
        self._registry = registry
        self._routes = registry.routes
        self._quarantine = quarantine
        self._emf = EmfDocuments(metrics) if metrics is not None else None
        self._time_reserve_ms = time_reserve_ms
        self._return_floor_ms = min(MAX_RETURN_FLOOR_MS, time_reserve_ms // 4)
        self._max_concurrent = max_concurrent_records
        self._max_receive_count = max_receive_count
        self._timer = timer
        self._wall_clock_ms = wall_clock_ms
        self._loop: asyncio.AbstractEventLoop | None = None
        self._backoff = backoff
        self._visibility = visibility
        self._idempotency = idempotency
        self._processor = _SettledBatchProcessor()

    @property
    def uses_idempotency(self) -> bool:
        return self._idempotency is not None

    def handle(self, event: dict[str, Any], context: LambdaContextLike) -> PartialItemFailureResponse:
        records = event.get("Records") or []
        if not records:
            return {"batchItemFailures": []}
        # The context's clock is read once: each record's start is checked against the timer it reads anyway.
        stop_at = self._timer() + (context.get_remaining_time_in_millis() - self._time_reserve_ms) / 1000
        run = _Run(context, BatchReport(), stop_at, debug=logger.log_level <= logging.DEBUG,
                   now_ms=self._wall_clock_ms())  # fmt: skip
        try:
            if str(records[0].get("eventSourceARN", "")).endswith(".fifo"):
                response = self._handle_fifo(event, run)
            else:
                response = self._handle_standard(event, run)
        finally:
            self._cancel_leftover_tasks()
        self._apply_backoff(records, response, run)
        run.report.log_summary(len(records))
        if self._emf is not None:
            run.report.publish(self._emf)
        return response

    def _handle_standard(self, event: dict[str, Any], run: _Run) -> PartialItemFailureResponse:
        """Run every record to its disposition, then let Powertools build the response.

        The batch is parsed and its events claimed together. Sync handlers then run
        inline; async handlers are awaited afterwards by a pool of
        ``max_concurrent_records`` workers on a persistent event loop, so I/O overlaps
        while a batch without async work never touches the loop. The idempotency
        records are settled and the quarantines sent together. Every failure is
        listed, even when all records fail (docs/decisions.md).
        """
        # Without idempotency each record runs as soon as it is parsed, and is let go once settled;
        # with it, the batch is parsed and claimed first.
        jobs: list[_Job] = []
        parsed = self._parsed(event["Records"], run)
        runnable = parsed if self._idempotency is None else self._claim(jobs := list(parsed), run)
        suspended: list[tuple[_Job, Awaitable[None]]] = []
        for job in runnable:
            try:
                awaitable = self._run_job(job, run)
            except Exception as exc:  # a bug in our bookkeeping: never lose the record
                self._list_unsettled(job.message_id, exc, run)
                continue
            if awaitable is not None:
                suspended.append((job, awaitable))
        if suspended:
            self._event_loop().run_until_complete(self._await_all(suspended, run))
        for job in jobs:
            if job.leader is not None:
                self._follow(job, run)
        self._settle_idempotency(jobs, run)
        self._send_quarantined(run)

        # One processor for the life of the environment, as Powertools' examples keep it.
        self._processor.outcomes = run.outcomes
        try:
            return process_partial_response(event, _settled, self._processor, None)
        finally:
            self._processor.outcomes = {}

    def _parsed(self, records: list[dict[str, Any]], run: _Run) -> Iterator[_Job]:
        """The records' jobs, in order; poison is queued for quarantine on the way."""
        now_ms = run.now_ms
        for raw in records:
            try:
                job = self._job(raw, now_ms)
            except PoisonMessageError as poison:
                try:
                    info = RecordInfo(raw)
                    self._quarantine_poison(SQSRecord(raw), info, self._age_ms(info), poison, run)
                except Exception as exc:  # a bug in our bookkeeping: never lose the record
                    self._list_unsettled(raw["messageId"], exc, run)
                continue
            except Exception as exc:  # a bug in our bookkeeping: never lose the record
                self._list_unsettled(raw["messageId"], exc, run)
                continue
            yield job

    def _handle_fifo(self, event: dict[str, Any], run: _Run) -> PartialItemFailureResponse:
        """One record at a time, in order; after a failure, the rest of its group is listed unprocessed.

        The events are claimed together first. A quarantine is sent before the next record
        starts: if the DLQ refuses it, the record failed and its group stops there.
        """
        parsed: dict[str, _Job | PoisonMessageError] = {}
        for raw in event["Records"]:
            record = SQSRecord(raw)
            try:
                parsed[record.message_id] = self._job(raw, run.now_ms)
            except PoisonMessageError as poison:
                parsed[record.message_id] = poison
        runnable = {id(job) for job in self._claim([j for j in parsed.values() if isinstance(j, _Job)], run)}
        processor = SqsFifoPartialProcessor(skip_group_on_error=True)
        processor.raise_on_entire_batch_failure = False

        def record_handler(record: SQSRecord) -> None:
            message_id = record.message_id
            try:
                job = parsed[message_id]
                if isinstance(job, PoisonMessageError):
                    info = RecordInfo(record.raw_event)
                    self._quarantine_poison(record, info, self._age_ms(info), job, run)
                elif job.leader is not None:
                    self._follow(job, run)
                elif id(job) in runnable:
                    awaitable = self._run_job(job, run)
                    if awaitable is not None:
                        self._event_loop().run_until_complete(self._await_one(job, awaitable, run))
            except Exception as exc:  # a bug in our bookkeeping: never lose the record
                self._list_unsettled(message_id, exc, run)
            self._send_quarantined(run)
            error = run.outcomes.get(message_id, _UNSETTLED)
            if error is not None:
                raise error

        response = process_partial_response(event, record_handler, processor, None)
        self._settle_idempotency([job for job in parsed.values() if isinstance(job, _Job)], run)
        return self._settle_never_started(event, response, run)

    def _settle_never_started(
        self, event: dict[str, Any], response: PartialItemFailureResponse, run: _Run
    ) -> PartialItemFailureResponse:
        """FIFO records listed behind a failed record of their group: quarantined on their last receive."""
        by_id = {raw["messageId"]: raw for raw in event["Records"]}
        for item in response["batchItemFailures"]:
            message_id = str(item["itemIdentifier"])
            if message_id in run.outcomes or message_id not in by_id:
                continue
            record = SQSRecord(by_id[message_id])
            info = RecordInfo(record.raw_event)
            why = f"behind a failed record of message group {info.message_group_id}"
            self._not_started(record, info, self._age_ms(info), run, why)
        self._send_quarantined(run)
        return {
            "batchItemFailures": [
                item
                for item in response["batchItemFailures"]
                if run.outcomes.get(str(item["itemIdentifier"]), _UNSETTLED)
            ]
        }

    def _apply_backoff(self, records: list[dict[str, Any]], response: PartialItemFailureResponse, run: _Run) -> None:
        """Listed records come back after their backoff; records never started, at once."""
        if not (self._backoff.enabled and self._visibility is not None and response["batchItemFailures"]):
            return
        by_id = {record["messageId"]: record for record in records}
        changes = []
        for item in response["batchItemFailures"]:
            record = by_id[item["itemIdentifier"]]
            delay = run.retry_delays.get(record["messageId"], 0)
            changes.append(VisibilityChange(record["eventSourceARN"], record["receiptHandle"], delay))
        self._visibility.change(changes, self._deadline(run))

    def _deadline(self, run: _Run, floor_ms: int | None = None) -> Deadline:
        floor = self._return_floor_ms if floor_ms is None else floor_ms
        return Deadline(run.context.get_remaining_time_in_millis, floor)

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        # One loop for the life of the execution environment: creating one per
        # invocation (asyncio.run) costs more than a small batch's records.
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        return self._loop

    def _cancel_leftover_tasks(self) -> None:
        """Tasks a handler left running must not run on during the next invocation."""
        if self._loop is None or self._loop.is_closed():
            return
        leftover = [task for task in asyncio.all_tasks(self._loop) if not task.done()]
        if not leftover:
            return
        for task in leftover:
            task.cancel()
        _, still_running = self._loop.run_until_complete(asyncio.wait(leftover, timeout=LEFTOVER_TASK_GRACE_SECONDS))
        logger.warning("Cancelled tasks that handlers left running", tasks=len(leftover), ignored=len(still_running))
        if still_running:
            # A task that ignores cancellation: a fresh loop keeps it out of later invocations.
            self._loop = None

    async def _await_all(self, suspended: list[tuple[_Job, Awaitable[None]]], run: _Run) -> None:
        pending = iter(suspended)

        async def worker() -> None:
            for job, awaitable in pending:
                await self._await_one(job, awaitable, run)

        await asyncio.gather(*(worker() for _ in range(min(self._max_concurrent, len(suspended)))))

    async def _await_one(self, job: _Job, awaitable: Awaitable[None], run: _Run) -> None:
        """Await an async handler and record its outcome."""
        message_id = job.message_id
        try:
            started = self._timer()
            if started > run.stop_at:
                if inspect.iscoroutine(awaitable):
                    awaitable.close()
                self._release(job, run)
                self._not_started(job.record, job, job.age_ms, run, _NEAR_TIMEOUT, event_type=job.event.event_type)
                return
            job.started = started
            try:
                await awaitable
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # contained to its record (CancelledError included)
                self._settle_failure(job, _as_exception(exc), run)
            else:
                self._settle_success(job, started, run)
        except Exception as exc:  # a bug in our bookkeeping: never lose the record
            self._list_unsettled(message_id, exc, run)

    def _job(self, raw: dict[str, Any], now_ms: float) -> _Job:
        """The record parsed into its event and route, or ``PoisonMessageError``."""
        try:
            event = self._registry.validate_json(raw["body"])
        except ValidationError as exc:
            raise self._registry.poison(exc) from exc
        return _Job(raw, event, self._routes[event.event_type], now_ms)

    def _quarantine_poison(
        self, record: SQSRecord, info: RecordInfo, age_ms: float, poison: PoisonMessageError, run: _Run
    ) -> None:
        if self._timer() > run.stop_at:
            self._not_started(record, info, age_ms, run, _NEAR_TIMEOUT, event_type=UNRECOGNIZED_TYPE)
            return
        self._quarantine_record(
            record, info, run, kind=poison.kind, reason=poison.reason, event_type=poison.event_type, age_ms=age_ms
        )

    def _claim(self, jobs: list[_Job], run: _Run) -> list[_Job]:
        """Claim the batch's events together; the jobs whose handler may run, in order.

        Copies of one event_id within the batch follow the first one's outcome.
        """
        if self._idempotency is None or not jobs:
            return jobs
        leaders: dict[str, _Job] = {}
        for job in jobs:
            leader = leaders.setdefault(job.event.event_id, job)
            if leader is not job:
                job.leader = leader
        remaining_ms = run.context.get_remaining_time_in_millis()
        try:
            claims = self._idempotency.claim(
                [job.event for job in leaders.values()], remaining_ms, self._deadline(run, self._time_reserve_ms)
            )
        except Exception as exc:  # an adapter that raises instead of answering: nothing runs, all retry
            claims = [Claim(ClaimState.UNAVAILABLE, exc)] * len(leaders)
        runnable = set()
        for job, claim in zip(leaders.values(), claims, strict=True):
            if claim.state is ClaimState.ACQUIRED:
                job.claimed = True
                runnable.add(id(job))
            elif claim.state is ClaimState.DUPLICATE:
                self._duplicate(job, run)
            elif claim.state is ClaimState.REUSED:
                self._reused(job, run, "the stored event has another event_type or payload")
            else:
                self._settle_failure(job, claim.error or RuntimeError("idempotency claim failed"), run)
        return [job for job in jobs if id(job) in runnable]

    def _follow(self, job: _Job, run: _Run) -> None:
        """A copy of an event that another record of this batch carries: it shares that record's outcome."""
        leader = job.leader
        assert leader is not None
        if _fingerprint(job.event) != _fingerprint(leader.event):
            self._reused(job, run, f"message {leader.message_id} of this batch carries another one")
        elif leader.message_id in run.outcomes and run.outcomes[leader.message_id] is None:
            self._duplicate(job, run)
        else:
            self._settle_failure(job, EventInProgressError("a copy of this event in the same batch did not succeed"),
                                 run)  # fmt: skip

    def _duplicate(self, job: _Job, run: _Run) -> None:
        run.report.add(job.event.event_type, Outcome.DUPLICATE, age_ms=job.age_ms)
        logger.info(
            "Duplicate acknowledged without running its handler",
            message_id=job.message_id,
            event_id=job.event.event_id,
        )
        run.outcomes[job.message_id] = None

    def _reused(self, job: _Job, run: _Run, detail: str) -> None:
        self._quarantine_record(
            job.record,
            job,
            run,
            kind=REUSED_EVENT_ID,
            reason=f"{REUSED_REASON}: {detail} (event_id {job.event.event_id!r})",
            event_type=job.event.event_type,
            age_ms=job.age_ms,
        )

    def _settle_idempotency(self, jobs: list[_Job], run: _Run) -> None:
        """Record the batch's outcomes in the store together; claims never used are released."""
        if self._idempotency is None:
            return
        for job in jobs:
            self._release(job, run)
        if run.completed or run.released:
            self._idempotency.settle(run.completed, run.released, self._deadline(run))

    def _run_job(self, job: _Job, run: _Run) -> Awaitable[None] | None:
        """Deadline check, then the handler: settle a sync outcome now, or return what remains to await."""
        started = self._timer()
        if started > run.stop_at:
            self._release(job, run)
            self._not_started(job.record, job, job.age_ms, run, _NEAR_TIMEOUT, event_type=job.event.event_type)
            return None
        if run.debug:
            logger.debug(
                "Record started",
                message_id=job.message_id,
                event_id=job.event.event_id,
                event_type=job.event.event_type,
            )
        job.started = started
        try:
            result = job.route.handler(job.event, job)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # contained to its record (CancelledError included)
            self._settle_failure(job, _as_exception(exc), run)
            return None
        if result is not None and inspect.isawaitable(result):
            return result
        self._settle_success(job, started, run)
        return None

    def _age_ms(self, info: RecordInfo) -> float:
        return max(0.0, self._wall_clock_ms() - info.sent_timestamp_ms) if info.sent_timestamp_ms else 0.0

    def _last_receive(self, info: RecordInfo) -> bool:
        return self._max_receive_count is not None and info.receive_count >= self._max_receive_count

    def _not_started(
        self, record: SQSRecord, info: RecordInfo, age_ms: float, run: _Run, why: str, *, event_type: str | None = None
    ) -> None:
        """Listed to return at once; on its last receive, quarantined with the reason it never ran."""
        if event_type is None:
            event_type = self._event_type_of(record.body)
        if self._last_receive(info):
            self._quarantine_record(
                record,
                info,
                run,
                kind=NOT_STARTED,
                reason=f"never started in {info.receive_count} receive(s); on the last one, {why}",
                event_type=event_type,
                age_ms=age_ms,
            )
            return
        run.report.add(
            event_type if event_type in self._registry else UNRECOGNIZED_TYPE, Outcome.SKIPPED, age_ms=age_ms
        )
        logger.warning(f"Record not started: {why}", message_id=info.message_id, event_type=event_type)
        run.outcomes[info.message_id] = DeadlineReachedError(f"not started: {why}")

    def _event_type_of(self, body: str) -> str:
        try:
            return self._registry.parse(body).event_type
        except PoisonMessageError:
            return UNRECOGNIZED_TYPE

    def _release(self, job: _Job, run: _Run) -> None:
        if job.claimed:
            run.released.append(job.event)
            job.claimed = False

    def _settle_success(self, job: _Job, started: float, run: _Run) -> None:
        elapsed_ms = (self._timer() - started) * 1000
        if job.claimed:
            run.completed.append(job.event)
            job.claimed = False
        run.report.add(job.event.event_type, Outcome.SUCCEEDED, age_ms=job.age_ms, processing_ms=elapsed_ms)
        run.outcomes[job.message_id] = None
        if run.debug:
            logger.debug("Record succeeded", message_id=job.message_id, event_id=job.event.event_id)

    def _settle_failure(self, job: _Job, exc: Exception, run: _Run) -> None:
        """Quarantine a non-retryable error, or one on the last receive; list anything else."""
        # A record that failed before its handler started (its claim) has no processing time.
        elapsed_ms = (self._timer() - job.started) * 1000 if job.started is not None else None
        self._release(job, run)
        error = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, NonRetryableError) or self._last_receive(job):
            retries_exhausted = not isinstance(exc, NonRetryableError)
            self._quarantine_record(
                job.record,
                job,
                run,
                kind=RETRIES_EXHAUSTED if retries_exhausted else NON_RETRYABLE,
                reason=f"failed on each of {job.receive_count} receive(s); last error: {error}"
                if retries_exhausted
                else str(exc),
                event_type=job.event.event_type,
                age_ms=job.age_ms,
                processing_ms=elapsed_ms,
            )
            return
        run.report.add(job.event.event_type, Outcome.FAILED, age_ms=job.age_ms, processing_ms=elapsed_ms)
        delay = self._backoff.delay(job.receive_count)
        if isinstance(exc, EventInProgressError):
            # Not before the other execution's in-progress record expires: the copy must not use up its receives.
            delay = min(MAX_BACKOFF_SECONDS, max(delay, exc.retry_after_seconds))
        run.retry_delays[job.message_id] = delay
        run.outcomes[job.message_id] = exc
        logger.warning(
            "Record failed; it will be retried",
            message_id=job.message_id,
            event_id=job.event.event_id,
            event_type=job.event.event_type,
            receive_count=job.receive_count,
            error=trim_utf8(error, LOG_VALUE_BYTES),
        )

    def _list_unsettled(self, message_id: str, exc: Exception, run: _Run) -> None:
        run.quarantining.pop(message_id, None)
        run.outcomes[message_id] = exc
        logger.exception("Record listed after an internal error", message_id=message_id)

    def _quarantine_record(
        self,
        record: SQSRecord,
        info: RecordInfo,
        run: _Run,
        *,
        kind: str,
        reason: str,
        event_type: str | None,
        age_ms: float,
        processing_ms: float | None = None,
    ) -> None:
        """Queue the copy for the DLQ; the record is acknowledged once the DLQ accepted it."""
        metric_type = event_type if event_type is not None and event_type in self._registry else UNRECOGNIZED_TYPE
        message = QuarantinedMessage(
            body=record.body,
            kind=kind,
            reason=reason,
            source_message_id=info.message_id,
            source_queue_arn=record.event_source_arn,
            receive_count=info.receive_count,
            event_type=event_type,
            message_group_id=info.message_group_id,
            original_attributes=record.get("messageAttributes") or None,
        )
        # Failing to quarantine a record that never ran lets it return at once; otherwise, its backoff.
        retry_delay = 0 if kind == NOT_STARTED else self._backoff.delay(info.receive_count)
        run.quarantining[info.message_id] = _Quarantining(message, metric_type, age_ms, processing_ms, retry_delay)

    def _send_quarantined(self, run: _Run) -> None:
        """Send every queued copy together; acknowledge those the DLQ accepted, list the others."""
        if not run.quarantining:
            return
        queued = list(run.quarantining.values())
        run.quarantining.clear()
        try:
            results = self._quarantine.send_batch([item.message for item in queued], self._deadline(run))
        except Exception as exc:  # an adapter that raises instead of answering: every record stays
            results = [exc] * len(queued)
        for item, error in zip(queued, results, strict=True):
            message = item.message
            message_id = message.source_message_id
            reason = trim_utf8(message.reason, LOG_VALUE_BYTES)
            event_type = trim_utf8(message.event_type, LOG_VALUE_BYTES) if message.event_type is not None else None
            if error is None:
                run.outcomes[message_id] = None
                run.report.add(
                    item.metric_type, Outcome.QUARANTINED, age_ms=item.age_ms, processing_ms=item.processing_ms
                )
                logger.warning(
                    "Record quarantined to the DLQ",
                    message_id=message_id,
                    event_type=event_type,
                    kind=message.kind,
                    reason=reason,
                )
                continue
            run.outcomes[message_id] = error
            run.retry_delays[message_id] = item.retry_delay
            run.report.add(item.metric_type, Outcome.FAILED, age_ms=item.age_ms, processing_ms=item.processing_ms)
            logger.error(
                "Quarantine failed; the record will be retried",
                message_id=message_id,
                kind=message.kind,
                reason=reason,
                error=trim_utf8(str(error), LOG_VALUE_BYTES),
            )


class _SettledBatchProcessor(BatchProcessor):
    """Powertools' SQS batch processor over a batch whose records are already settled.

    The records ran before (parsed, claimed and awaited together, which a per-record
    handler cannot do); here each one's recorded outcome is reported. Only the records
    to list go through Powertools' ``failure_handler``, and Powertools builds the
    response from them as it does for any processor: a success needs no bookkeeping, and
    going through the handler call for each one cost as much as validating its body.
    """

    def __init__(self) -> None:
        super().__init__(EventType.SQS, raise_on_entire_batch_failure=False)
        # The batch's outcomes, set for each batch: None for a deleted record, the error of a listed one.
        self.outcomes: dict[str, Exception | None] = {}

    def _prepare(self) -> None:
        # Powertools' own reset, with a fresh literal for its deep copy of the default response.
        self.success_messages.clear()
        self.fail_messages.clear()
        self.exceptions.clear()
        self.batch_response = {"batchItemFailures": []}

    def process(self) -> list[tuple[Any, ...]]:
        results: list[tuple[Any, ...]] = []
        for raw in self.records:
            error = self.outcomes.get(raw["messageId"], _UNSETTLED)
            if error is not None:
                results.append(self.failure_handler(SQSRecord(raw), (type(error), error, error.__traceback__)))
        return results


def _settled(record: SQSRecord) -> None:
    """The record handler Powertools is given: never called, every record being settled already."""
    raise AssertionError(f"record {record.message_id} was not settled before the response")


def _fingerprint(event: BaseEvent) -> dict[str, Any]:
    data = event_data(event)
    data.pop("event_id", None)
    return data


# The outcome of a record that no path settled: listed, never silently deleted.
_UNSETTLED = DeadlineReachedError("not settled")


def _as_exception(exc: BaseException) -> Exception:
    if isinstance(exc, Exception):
        return exc
    return HandlerAbortedError(f"the handler raised {type(exc).__name__}: {exc}")
