"""Every record's disposition (DESIGN.md §4), on top of the Powertools batch utility.

Delivery is at-least-once; per record, exactly one of:

- the handler returns: success, the message is deleted;
- the handler raises: retryable failure, listed in ``batchItemFailures``; the
  message returns after the visibility timeout and the redrive policy moves it
  to the DLQ after ``maxReceiveCount`` receives;
- the body cannot be parsed or validated, its type is unknown, or the handler
  raises ``NonRetryableError``: quarantined, i.e. sent to the DLQ at once with
  the reason, then deleted; if the DLQ refuses it, a retryable failure;
- the function is within ``time_reserve_ms`` of its timeout: not started and
  listed as a failure, so a timeout cannot redeliver records that succeeded;
- FIFO: once a record of a message group fails, the group's later records are
  listed as failures (``skip_group_on_error``); other groups go on;
- with idempotency on: an ``event_id`` already processed is acknowledged without
  running its handler; one in progress elsewhere is listed for retry.

Listed records then come back after their retry backoff (``retry.py``).

A record is never both deleted and listed: Powertools lists exactly the records
whose record handler raised.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    SqsFifoPartialProcessor,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from sqs_consumer.errors import DeadlineReachedError, NonRetryableError, PoisonMessageError
from sqs_consumer.idempotency import Idempotency
from sqs_consumer.models.base import BaseEvent
from sqs_consumer.observability import UNRECOGNIZED_TYPE, BatchReport, Outcome, logger
from sqs_consumer.quarantine import Quarantine, QuarantinedMessage
from sqs_consumer.registry import NON_RETRYABLE, EventRegistry, RecordInfo, Route
from sqs_consumer.retry import NO_BACKOFF, Backoff, VisibilityChange, VisibilitySetter


class LambdaContextLike(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


@dataclass(slots=True)
class _Run:
    """One invocation: its context (for the deadline) and its report."""

    context: LambdaContextLike
    report: BatchReport
    # Per-record lines are built only when they would be written.
    debug: bool = False
    # Backoff (seconds) of each record that failed with a retryable error.
    retry_delays: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Job:
    """A parsed record, ready for its handler."""

    record: SQSRecord
    info: RecordInfo
    event: BaseEvent
    route: Route[Any]
    age_ms: float
    started: float
    # True once this execution holds the event's in-progress idempotency record.
    acquired: bool = False


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
        backoff: Backoff = NO_BACKOFF,
        visibility: VisibilitySetter | None = None,
        idempotency: Idempotency | None = None,
        timer: Callable[[], float] = time.perf_counter,
        wall_clock_ms: Callable[[], float] = lambda: time.time() * 1000,
    ) -> None:
        self._registry = registry
        self._quarantine = quarantine
        self._metrics = metrics
        self._time_reserve_ms = time_reserve_ms
        self._max_concurrent = max_concurrent_records
        self._timer = timer
        self._wall_clock_ms = wall_clock_ms
        self._loop: asyncio.AbstractEventLoop | None = None
        self._backoff = backoff
        self._visibility = visibility
        self._idempotency = idempotency

    def handle(self, event: dict[str, Any], context: LambdaContextLike) -> PartialItemFailureResponse:
        records = event.get("Records") or []
        if not records:
            return {"batchItemFailures": []}
        run = _Run(context, BatchReport(), debug=logger.log_level <= logging.DEBUG)
        if str(records[0].get("eventSourceARN", "")).endswith(".fifo"):
            response = self._handle_fifo(event, run)
        else:
            response = self._handle_standard(event, run)
        self._apply_backoff(records, response, run)
        run.report.log_summary(len(records))
        if self._metrics is not None:
            run.report.publish(self._metrics)
        return response

    def _handle_standard(self, event: dict[str, Any], run: _Run) -> PartialItemFailureResponse:
        """Run every record to its disposition, then let Powertools build the response.

        Sync handlers run inline. Async handlers are awaited afterwards by a pool
        of ``max_concurrent_records`` workers on a persistent event loop, so I/O
        overlaps while a batch without async work never touches the loop. Every
        failure is listed, even when all records fail (docs/decisions.md).
        """
        outcomes: dict[str, Exception | None] = {}
        suspended: list[tuple[_Job, Awaitable[None]]] = []
        for raw in event["Records"]:
            record = SQSRecord(raw)
            message_id = raw["messageId"]
            try:
                job = self._start(record, run)
                awaitable = self._call_handler(job, run) if job is not None else None
            except Exception as exc:  # retryable, or a bug in our bookkeeping: never lose the record
                outcomes[message_id] = exc
                continue
            if awaitable is not None and job is not None:
                suspended.append((job, awaitable))
            else:
                outcomes[message_id] = None
        if suspended:
            self._event_loop().run_until_complete(self._await_all(suspended, outcomes, run))

        def record_handler(record: SQSRecord) -> None:
            error = outcomes[record.message_id]
            if error is not None:
                raise error

        processor = BatchProcessor(EventType.SQS, raise_on_entire_batch_failure=False)
        return process_partial_response(event, record_handler, processor, None)

    def _handle_fifo(self, event: dict[str, Any], run: _Run) -> PartialItemFailureResponse:
        """One record at a time, in order; after a failure, the rest of its group is listed unprocessed."""
        processor = SqsFifoPartialProcessor(skip_group_on_error=True)
        processor.raise_on_entire_batch_failure = False

        def record_handler(record: SQSRecord) -> None:
            job = self._start(record, run)
            awaitable = self._call_handler(job, run) if job is not None else None
            if awaitable is not None and job is not None:
                error = self._event_loop().run_until_complete(self._await_one(job, awaitable, run))
                if error is not None:
                    raise error

        return process_partial_response(event, record_handler, processor, None)

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
        self._visibility.change(changes)

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        # One loop for the life of the execution environment: creating one per
        # invocation (asyncio.run) costs more than a small batch's records.
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        return self._loop

    async def _await_all(
        self, suspended: list[tuple[_Job, Awaitable[None]]], outcomes: dict[str, Exception | None], run: _Run
    ) -> None:
        pending = iter(suspended)

        async def worker() -> None:
            for job, awaitable in pending:
                outcomes[job.info.message_id] = await self._await_one(job, awaitable, run)

        await asyncio.gather(*(worker() for _ in range(min(self._max_concurrent, len(suspended)))))

    async def _await_one(self, job: _Job, awaitable: Awaitable[None], run: _Run) -> Exception | None:
        """Await an async handler; the exception returned means "list it as failed"."""
        try:
            if run.context.get_remaining_time_in_millis() < self._time_reserve_ms:
                if inspect.iscoroutine(awaitable):
                    awaitable.close()
                self._release(job, DeadlineReachedError("not started"))
                self._skip(job.info, job.age_ms, run)
            job.started = self._timer()
            try:
                await awaitable
            except Exception as exc:
                self._settle_failure(job, exc, run)
            else:
                self._settle_success(job, run)
        except Exception as exc:  # retryable, or a bug in our bookkeeping: never lose the record
            return exc
        return None

    def _start(self, record: SQSRecord, run: _Run) -> _Job | None:
        """Deadline check and parsing; ``None`` when the record was quarantined."""
        info = _record_info(record.raw_event)
        age_ms = max(0.0, self._wall_clock_ms() - info.sent_timestamp_ms) if info.sent_timestamp_ms else 0.0
        if run.context.get_remaining_time_in_millis() < self._time_reserve_ms:
            self._skip(info, age_ms, run)
        try:
            event = self._registry.parse(record.body)
        except PoisonMessageError as poison:
            self._quarantine_record(
                record, info, run, kind=poison.kind, reason=poison.reason, event_type=poison.event_type, age_ms=age_ms
            )
            return None
        if run.debug:
            logger.debug(
                "Record started", message_id=info.message_id, event_id=event.event_id, event_type=event.event_type
            )
        return _Job(record, info, event, self._registry.route_for(event), age_ms, self._timer())

    def _skip(self, info: RecordInfo, age_ms: float, run: _Run) -> NoReturn:
        run.report.add(UNRECOGNIZED_TYPE, Outcome.SKIPPED, age_ms=age_ms)
        logger.warning("Record not started: the function is close to its timeout", message_id=info.message_id)
        raise DeadlineReachedError("not started: the function is close to its timeout")

    def _call_handler(self, job: _Job, run: _Run) -> Awaitable[None] | None:
        """Call the handler; settle a sync outcome now, or return what remains to await."""
        if self._idempotency is not None:
            try:
                job.acquired = self._idempotency.begin(job.event, run.context.get_remaining_time_in_millis())
            except Exception as exc:  # in progress elsewhere, or the store is unreachable: retry later
                self._settle_failure(job, exc, run)
                return None
            if not job.acquired:
                run.report.add(job.event.event_type, Outcome.DUPLICATE, age_ms=job.age_ms)
                logger.info(
                    "Duplicate acknowledged without running its handler",
                    message_id=job.info.message_id,
                    event_id=job.event.event_id,
                )
                return None
        try:
            result = job.route.handler(job.event, job.info)
        except Exception as exc:
            self._settle_failure(job, exc, run)
            return None
        if result is not None and inspect.isawaitable(result):
            return result
        self._settle_success(job, run)
        return None

    def _release(self, job: _Job, exc: Exception) -> None:
        if job.acquired and self._idempotency is not None:
            self._idempotency.release(job.event, exc)
            job.acquired = False

    def _settle_success(self, job: _Job, run: _Run) -> None:
        elapsed_ms = (self._timer() - job.started) * 1000
        if job.acquired and self._idempotency is not None:
            self._idempotency.succeed(job.event)
        run.report.add(job.event.event_type, Outcome.SUCCEEDED, age_ms=job.age_ms, processing_ms=elapsed_ms)
        if run.debug:
            logger.debug("Record succeeded", message_id=job.info.message_id, event_id=job.event.event_id)

    def _settle_failure(self, job: _Job, exc: Exception, run: _Run) -> None:
        """Quarantine a non-retryable error; re-raise anything else (a retryable failure)."""
        elapsed_ms = (self._timer() - job.started) * 1000
        self._release(job, exc)
        if isinstance(exc, NonRetryableError):
            self._quarantine_record(
                job.record,
                job.info,
                run,
                kind=NON_RETRYABLE,
                reason=str(exc),
                event_type=job.event.event_type,
                age_ms=job.age_ms,
                processing_ms=elapsed_ms,
            )
            return
        run.report.add(job.event.event_type, Outcome.FAILED, age_ms=job.age_ms, processing_ms=elapsed_ms)
        run.retry_delays[job.info.message_id] = self._backoff.delay(job.info.receive_count)
        logger.warning(
            "Record failed; it will be retried",
            message_id=job.info.message_id,
            event_id=job.event.event_id,
            event_type=job.event.event_type,
            receive_count=job.info.receive_count,
            error=f"{type(exc).__name__}: {exc}",
        )
        raise exc

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
        """Send to the DLQ, then acknowledge; raise (a retryable failure) if the DLQ refuses."""
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
        try:
            self._quarantine.send(message)
        except Exception as exc:
            run.report.add(metric_type, Outcome.FAILED, age_ms=age_ms, processing_ms=processing_ms)
            run.retry_delays[info.message_id] = self._backoff.delay(info.receive_count)
            logger.error(
                "Quarantine failed; the record will be retried",
                message_id=info.message_id,
                kind=kind,
                reason=reason,
                error=str(exc),
            )
            raise
        run.report.add(metric_type, Outcome.QUARANTINED, age_ms=age_ms, processing_ms=processing_ms)
        logger.warning(
            "Record quarantined to the DLQ",
            message_id=info.message_id,
            event_type=event_type,
            kind=kind,
            reason=reason,
        )


def _record_info(record: dict[str, Any]) -> RecordInfo:
    # The raw dict: Powertools' data class wrapper costs more per key than the rest of this function.
    attributes = record.get("attributes") or {}
    return RecordInfo(
        message_id=record["messageId"],
        receive_count=int(attributes.get("ApproximateReceiveCount", 1)),
        sent_timestamp_ms=int(attributes.get("SentTimestamp", 0)),
        message_group_id=attributes.get("MessageGroupId"),
    )
