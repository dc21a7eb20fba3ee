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
  listed as failures (``skip_group_on_error``); other groups go on.

A record is never both deleted and listed: Powertools lists exactly the records
whose record handler raised.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.utilities.batch import (
    AsyncBatchProcessor,
    EventType,
    SqsFifoPartialProcessor,
    async_process_partial_response,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from sqs_consumer.errors import DeadlineReachedError, NonRetryableError, PoisonMessageError
from sqs_consumer.models.base import BaseEvent
from sqs_consumer.observability import UNRECOGNIZED_TYPE, BatchReport, Outcome, logger
from sqs_consumer.quarantine import Quarantine, QuarantinedMessage
from sqs_consumer.registry import NON_RETRYABLE, EventRegistry, RecordInfo, Route


class LambdaContextLike(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


@dataclass(slots=True)
class _Run:
    """One invocation: its context (for the deadline) and its report."""

    context: LambdaContextLike
    report: BatchReport


@dataclass(slots=True)
class _Job:
    """A parsed record, ready for its handler."""

    record: SQSRecord
    info: RecordInfo
    event: BaseEvent
    route: Route[Any]
    age_ms: float
    started: float


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

    def handle(self, event: dict[str, Any], context: LambdaContextLike) -> PartialItemFailureResponse:
        records = event.get("Records") or []
        if not records:
            return {"batchItemFailures": []}
        run = _Run(context, BatchReport())
        if str(records[0].get("eventSourceARN", "")).endswith(".fifo"):
            response = self._handle_fifo(event, run)
        else:
            response = self._handle_standard(event, run)
        run.report.log_summary(len(records))
        if self._metrics is not None:
            run.report.publish(self._metrics)
        return response

    def _handle_standard(self, event: dict[str, Any], run: _Run) -> PartialItemFailureResponse:
        # Every failure is listed, even when all records fail: the response
        # always follows the ReportBatchItemFailures contract (docs/decisions.md).
        processor = AsyncBatchProcessor(EventType.SQS, raise_on_entire_batch_failure=False)
        semaphore = asyncio.Semaphore(self._max_concurrent)

        async def record_handler(record: SQSRecord) -> None:
            async with semaphore:
                job = self._start(record, run)
                if job is None:
                    return
                try:
                    result = job.route.handler(job.event, job.info)
                    if inspect.isawaitable(result):
                        await result
                except Exception as exc:
                    self._settle_failure(job, exc, run)
                else:
                    self._settle_success(job, run)

        return async_process_partial_response(event, record_handler, processor, None)

    def _handle_fifo(self, event: dict[str, Any], run: _Run) -> PartialItemFailureResponse:
        # Records stay in order: async handlers run one at a time on a private loop.
        processor = SqsFifoPartialProcessor(skip_group_on_error=True)
        processor.raise_on_entire_batch_failure = False
        loop = asyncio.new_event_loop()

        def record_handler(record: SQSRecord) -> None:
            job = self._start(record, run)
            if job is None:
                return
            try:
                result = job.route.handler(job.event, job.info)
                if inspect.isawaitable(result):
                    loop.run_until_complete(result)
            except Exception as exc:
                self._settle_failure(job, exc, run)
            else:
                self._settle_success(job, run)

        try:
            return process_partial_response(event, record_handler, processor, None)
        finally:
            loop.close()

    def _start(self, record: SQSRecord, run: _Run) -> _Job | None:
        """Deadline check and parsing; ``None`` when the record was quarantined."""
        info = _record_info(record)
        age_ms = max(0.0, self._wall_clock_ms() - info.sent_timestamp_ms) if info.sent_timestamp_ms else 0.0
        if run.context.get_remaining_time_in_millis() < self._time_reserve_ms:
            run.report.add(UNRECOGNIZED_TYPE, Outcome.SKIPPED, age_ms=age_ms)
            logger.warning("Record not started: the function is close to its timeout", message_id=info.message_id)
            raise DeadlineReachedError("not started: the function is close to its timeout")
        try:
            event = self._registry.parse(record.body)
        except PoisonMessageError as poison:
            self._quarantine_record(
                record, info, run, kind=poison.kind, reason=poison.reason, event_type=poison.event_type, age_ms=age_ms
            )
            return None
        logger.debug("Record started", message_id=info.message_id, event_id=event.event_id, event_type=event.event_type)
        return _Job(record, info, event, self._registry.route_for(event), age_ms, self._timer())

    def _settle_success(self, job: _Job, run: _Run) -> None:
        elapsed_ms = (self._timer() - job.started) * 1000
        run.report.add(job.event.event_type, Outcome.SUCCEEDED, age_ms=job.age_ms, processing_ms=elapsed_ms)
        logger.debug("Record succeeded", message_id=job.info.message_id, event_id=job.event.event_id)

    def _settle_failure(self, job: _Job, exc: Exception, run: _Run) -> None:
        """Quarantine a non-retryable error; re-raise anything else (a retryable failure)."""
        elapsed_ms = (self._timer() - job.started) * 1000
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


def _record_info(record: SQSRecord) -> RecordInfo:
    attributes = record.get("attributes") or {}
    return RecordInfo(
        message_id=record.message_id,
        receive_count=int(attributes.get("ApproximateReceiveCount", 1)),
        sent_timestamp_ms=int(attributes.get("SentTimestamp", 0)),
        message_group_id=attributes.get("MessageGroupId"),
    )
