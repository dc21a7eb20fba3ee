"""Stage 4, settle: every record's disposition acted on, in one place, within the time reserve.

Successes were acted on as their handlers returned (batch.py). Here, the records
left: quarantined copies go to the DLQ together (a refused one makes its record listed); the group
commit's last write is awaited; each disposition is counted and logged once; the listed records
get their retry backoff; Powertools builds the response. A record is never both deleted and
listed: the response lists exactly the records whose disposition is ``Listed``.

What follows the commit's last write grows with the batch and must end before the timeout: one log
line per record is written until the commit floor (``Batch.lines_until``), and one line sums up the
records left past it (a structured line costs more than validating a record, on a fraction of a CPU).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

from sqs_consumer.collector import paused
from sqs_consumer.errors import DependencyUnavailable, FollowUpsNotSentError, describe
from sqs_consumer.observability import UNRECOGNIZED_TYPE, Outcome, logger
from sqs_consumer.pipeline.batch import Batch
from sqs_consumer.pipeline.dispositions import DUPLICATE, SUCCEEDED, Listed, Quarantined, Resent
from sqs_consumer.pipeline.records import Item, Job
from sqs_consumer.pipeline.response import SettledBatchProcessor
from sqs_consumer.quarantine import Quarantine, QuarantinedMessage
from sqs_consumer.registry import EventRegistry
from sqs_consumer.resend import Resender, ResentMessage
from sqs_consumer.retry import Backoff, VisibilityChange, VisibilitySetter
from sqs_consumer.sqs_limits import trim_utf8

# Values quoted in log lines are cut to this many bytes: a poison body may hold megabytes.
LOG_VALUE_BYTES = 512
# A summary of the records logged without a line each names this many of them.
SUMMARY_MESSAGE_IDS = 20


class Settlement:
    def __init__(
        self,
        registry: EventRegistry,
        quarantine: Quarantine,
        backoff: Backoff,
        visibility: VisibilitySetter | None,
        resender: Resender | None = None,
    ) -> None:
        self._registry = registry
        self._resender = resender
        self._quarantine = quarantine
        self._backoff = backoff
        self._visibility = visibility
        # One processor for the life of the environment, as Powertools' examples keep it.
        self._processor = SettledBatchProcessor()

    def settle(self, event: dict[str, Any], items: list[Item], batch: Batch) -> PartialItemFailureResponse:
        for item in items:
            if item.disposition is None:  # no stage decided it (a bug): listed, never silently deleted
                batch.decide(item, Listed(RuntimeError("not settled"), 0))
        self.send_quarantined(items, batch)
        self.send_resent(items, batch)
        if batch.commit is not None:
            unconfirmed = batch.commit.wait()
            if unconfirmed:
                logger.error("Completions not confirmed by the store before the deadline; acknowledged anyway: "
                             "their effects happened", unconfirmed=unconfirmed)  # fmt: skip
            if _followups_unsent(items, batch):
                self.send_quarantined(items, batch)
        # Without collections: what the counting and the response allocate (an entry and a wrapper per listed
        # record) is freed by reference counting, but would set off collections that scan every object of the
        # batch still alive (its records, events, errors and their tracebacks): measured on 10,000 listed
        # records, 40 us a record in collections against 6 us of work, past the commit floor.
        with paused():
            listed = self._account(items, batch)
            response = self._processor.respond(event, listed)
        self._apply_backoff(items, batch)
        return response

    def confirm_one(self, item: Item, batch: Batch) -> None:
        """Send one record's copy now, before the next record starts (the FIFO ordering needs it)."""
        self.send_quarantined([item], batch)

    def send_quarantined(self, items: list[Item], batch: Batch) -> None:
        """Send every quarantined copy not sent yet together; the records whose copy the DLQ refused
        become listed, after their backoff."""
        queued = [
            item for item in items if isinstance(item.disposition, Quarantined) and item.message_id not in batch.sent
        ]
        if not queued:
            return
        messages = [_message(item) for item in queued]
        try:
            results = self._quarantine.send_batch(messages, batch.deadline())
        except Exception as exc:  # an adapter that raises instead of answering: every record stays
            results = [exc] * len(queued)
        for item, error in zip(queued, results, strict=True):
            batch.sent.add(item.message_id)
            if error is not None:
                quarantined = item.disposition
                assert isinstance(quarantined, Quarantined)
                batch.refused[item.message_id] = error
                item.disposition = Listed(error, quarantined.retry_delay_s)

    def send_resent(self, items: list[Item], batch: Batch) -> None:
        """Send every record to be sent again to its queue together; one whose copy is refused stays listed."""
        queued = [item for item in items if isinstance(item.disposition, Resent)]
        if not queued:
            return
        messages = [_resent(item) for item in queued]
        try:
            if self._resender is None:
                raise RuntimeError("no resender configured")
            results = self._resender.send_batch(messages, batch.deadline())
        except Exception as exc:  # an adapter that raises instead of answering: every record stays
            results = [exc] * len(queued)
        for item, error in zip(queued, results, strict=True):
            resent = item.disposition
            assert isinstance(resent, Resent)
            if error is not None:
                logger.error("Record not sent again; it will be retried", message_id=item.message_id,
                             event_id=_event_id(item), trace_id=item.trace_id,
                             error=trim_utf8(describe(error), LOG_VALUE_BYTES))  # fmt: skip
                item.disposition = Listed(resent.error, resent.delay_s)

    def _account(self, items: list[Item], batch: Batch) -> dict[str, Exception]:
        """Count and log each record's disposition once; the listed records, with their errors."""
        add, timer, lines_until = batch.report.add, batch.timer, batch.lines_until
        listed: dict[str, Exception] = {}
        untold = _Untold()
        for item in items:
            disposition = item.disposition
            if disposition is SUCCEEDED:  # counted when its handler returned, or now once its follow-ups went
                if isinstance(item, Job) and item.followups:
                    add(item.event_type, Outcome.SUCCEEDED, age_ms=item.age_ms, processing_ms=item.processing_ms)
                continue
            metric_type = self._metric_type(item.event_type)
            processing_ms = item.processing_ms if isinstance(item, Job) else None
            line = timer() < lines_until
            if disposition is DUPLICATE:
                assert isinstance(item, Job)
                add(metric_type, Outcome.DUPLICATE, age_ms=item.age_ms)
                if not line:
                    untold.add(item, Outcome.DUPLICATE, None)
                    continue
                logger.info("Duplicate acknowledged without running its handler", message_id=item.message_id,
                            event_id=item.event.event_id, trace_id=item.trace_id,
                            envelope=item.envelope.log_fields() or None)  # fmt: skip
            elif isinstance(disposition, Quarantined):
                add(metric_type, Outcome.QUARANTINED, age_ms=item.age_ms, processing_ms=processing_ms)
                if not line:
                    untold.add(item, Outcome.QUARANTINED, None)
                    continue
                logger.warning("Record quarantined to the DLQ", message_id=item.message_id,
                               event_id=_event_id(item), trace_id=item.trace_id,
                               event_type=_quoted(item.event_type), kind=disposition.kind,
                               reason=trim_utf8(disposition.reason, LOG_VALUE_BYTES),
                               envelope=item.envelope.log_fields() or None)  # fmt: skip
            elif isinstance(disposition, Resent):
                add(metric_type, Outcome.SKIPPED, age_ms=item.age_ms, processing_ms=processing_ms)
                if not line:
                    untold.add(item, Outcome.SKIPPED, None)
                    continue
                logger.warning("Record sent again to its queue: its dependency is unavailable on its last receive",
                               message_id=item.message_id, event_id=_event_id(item), trace_id=item.trace_id,
                               event_type=_quoted(item.event_type), delay_seconds=disposition.delay_s,
                               receive_count=item.receive_count,
                               reason=trim_utf8(describe(disposition.error, typed=False), LOG_VALUE_BYTES))  # fmt: skip
            elif isinstance(disposition, Listed):
                listed[item.message_id] = disposition.error
                add(metric_type, disposition.outcome, age_ms=item.age_ms, processing_ms=processing_ms)
                if not line:
                    untold.add(item, disposition.outcome, disposition.error)
                    continue
                self._log_listed(item, disposition, batch.refused.get(item.message_id))
        untold.log()
        return listed

    def _log_listed(self, item: Item, listed: Listed, refused: Exception | None) -> None:
        if refused is not None:
            logger.error("Quarantine failed; the record will be retried", message_id=item.message_id,
                         event_id=_event_id(item), trace_id=item.trace_id,
                         error=trim_utf8(describe(refused), LOG_VALUE_BYTES))  # fmt: skip
        elif listed.outcome is Outcome.SKIPPED:
            logger.warning("Record not started", message_id=item.message_id, event_id=_event_id(item),
                           trace_id=item.trace_id, event_type=_quoted(item.event_type),
                           reason=trim_utf8(describe(listed.error, typed=False), LOG_VALUE_BYTES))  # fmt: skip
        else:
            logger.warning("Record failed; it will be retried", message_id=item.message_id,
                           event_id=_event_id(item), trace_id=item.trace_id,
                           event_type=_quoted(item.event_type), receive_count=item.receive_count,
                           error=trim_utf8(describe(listed.error), LOG_VALUE_BYTES),
                           envelope=item.envelope.log_fields() or None)  # fmt: skip

    def _metric_type(self, event_type: str | None) -> str:
        return event_type if event_type is not None and event_type in self._registry else UNRECOGNIZED_TYPE

    def _apply_backoff(self, items: list[Item], batch: Batch) -> None:
        """Listed records come back after their backoff; records never started, at once."""
        if self._visibility is None:
            return
        deadline = batch.deadline()
        if deadline.passed:  # no call could be made: not even the list of changes is built
            return
        changes = [
            VisibilityChange(item.raw["eventSourceARN"], item.raw["receiptHandle"], item.disposition.delay_s)
            for item in items
            # Without a backoff, only a record waiting for its dependency: back when its breaker's probe has run.
            if isinstance(item.disposition, Listed)
            and (self._backoff.enabled or isinstance(item.disposition.error, DependencyUnavailable))
        ]
        if changes:
            self._visibility.change(changes, deadline)


def _followups_unsent(items: list[Item], batch: Batch) -> bool:
    """Records acknowledged (succeeded or duplicate) whose follow-ups did not all go: retried instead, their
    completion standing, so their next delivery, a duplicate, sends what is left (quarantined on the last
    receive, from where a redrive does the same). Whether any became quarantined."""
    quarantined = False
    for item in items:
        if not isinstance(item, Job) or not item.followups or item.disposition not in (SUCCEEDED, DUPLICATE):
            continue
        outbox = item.outbox
        assert outbox is not None
        if outbox.sent:
            continue
        why = describe(outbox.error) if outbox.error is not None else "not sent before the deadline"
        error = FollowUpsNotSentError(f"{len(outbox.followups)} follow-up(s) stored but not all sent: {why}")
        item.disposition = disposition = batch.decisions.failure(item, error, item.event_type)
        quarantined = quarantined or isinstance(disposition, Quarantined)
    return quarantined


class _Untold:
    """The records past ``Batch.lines_until``: counted by outcome, a few named, summed up in one line."""

    __slots__ = ("first_error", "message_ids", "outcomes")

    def __init__(self) -> None:
        self.outcomes: Counter[Outcome] = Counter()
        self.message_ids: list[str] = []
        self.first_error: Exception | None = None

    def add(self, item: Item, outcome: Outcome, error: Exception | None) -> None:
        self.outcomes[outcome] += 1
        if len(self.message_ids) < SUMMARY_MESSAGE_IDS:
            self.message_ids.append(item.message_id)
        if self.first_error is None and outcome is Outcome.FAILED:
            self.first_error = error

    def log(self) -> None:
        if not self.outcomes:
            return
        logger.warning(
            "Records settled without a line each: the function was close to its timeout",
            records=sum(self.outcomes.values()),
            message_ids=self.message_ids,
            first_error=trim_utf8(describe(self.first_error), LOG_VALUE_BYTES) if self.first_error else None,
            outcomes={outcome.value: count for outcome, count in self.outcomes.items()},
        )


def _message(item: Item) -> QuarantinedMessage:
    quarantined = item.disposition
    assert isinstance(quarantined, Quarantined)
    raw = item.raw
    return QuarantinedMessage(
        body=raw["body"],
        kind=quarantined.kind,
        reason=quarantined.reason,
        source_message_id=item.message_id,
        source_queue_arn=raw.get("eventSourceARN", ""),
        receive_count=item.receive_count,
        event_type=quarantined.event_type,
        message_group_id=item.message_group_id,
        original_attributes=raw.get("messageAttributes") or None,
        trace_header=item.trace_header,
    )


def _event_id(item: Item) -> str | None:
    return item.event.event_id if isinstance(item, Job) else None


def _resent(item: Item) -> ResentMessage:
    resent = item.disposition
    assert isinstance(resent, Resent)
    raw = item.raw
    return ResentMessage(
        raw.get("eventSourceARN", ""),
        raw["body"],
        raw.get("messageAttributes") or None,
        resent.delay_s,
        trace_header=item.trace_header,
    )


def _quoted(event_type: str | None) -> str | None:
    return trim_utf8(event_type, LOG_VALUE_BYTES) if event_type is not None else None
