"""One SQS batch, top-down: parse, claim, run, settle (docs/design.md §4).

Delivery is at-least-once; each record ends with exactly one disposition (dispositions.py):
succeeded or duplicate (deleted), listed (retried after its backoff), or quarantined (sent to the
DLQ with its reason, then deleted). Standard and FIFO queues go through the same stages and differ
only in their ordering policy (ordering.py). With idempotency on, each success is written to the
store as its handler returns (group commit, commit.py), so a crash repeats at most the effects of
the last store round trip.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

from sqs_consumer.followups import FollowUpSender
from sqs_consumer.idempotency.port import Idempotency
from sqs_consumer.observability import EmfDocuments
from sqs_consumer.payload_store import S3Payloads
from sqs_consumer.pipeline.batch import Batch, LambdaContextLike
from sqs_consumer.pipeline.claims import claim_events
from sqs_consumer.pipeline.commit import GroupCommit
from sqs_consumer.pipeline.decisions import Decisions
from sqs_consumer.pipeline.dispositions import DUPLICATE, SUCCEEDED, Listed, Quarantined
from sqs_consumer.pipeline.ordering import ordering_for
from sqs_consumer.pipeline.records import Item, parse_records
from sqs_consumer.pipeline.runner import Runner
from sqs_consumer.pipeline.settlement import Settlement
from sqs_consumer.pipeline.tenants import BUSIEST_TENANTS, busiest_tenants
from sqs_consumer.quarantine import Quarantine
from sqs_consumer.registry import EventRegistry
from sqs_consumer.resend import Resender
from sqs_consumer.retry import NO_BACKOFF, Backoff, VisibilitySetter
from sqs_consumer.tracing import SegmentEmitter

if TYPE_CHECKING:  # made by the entry point when the stage has them (handler.py): not imported otherwise
    from sqs_consumer.dependencies.rate import RateLimiter
    from sqs_consumer.pipeline.breakers import BreakerStage


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
        payloads: S3Payloads | None = None,
        followups: FollowUpSender | None = None,
        breakers: BreakerStage | None = None,
        limits: RateLimiter | None = None,
        resender: Resender | None = None,
        timer: Callable[[], float] = time.perf_counter,
        wall_clock_ms: Callable[[], float] = lambda: time.time() * 1000,
        busiest_tenants: int = BUSIEST_TENANTS,
        tracing: SegmentEmitter | None = None,
    ) -> None:
        self._registry = registry
        self._busiest_tenants = busiest_tenants
        self._emf = EmfDocuments(metrics) if metrics is not None else None
        self._time_reserve_ms = time_reserve_ms
        self._decisions = Decisions(max_receive_count, backoff, breakers=breakers is not None)
        self._breakers = breakers
        self._limits = limits
        self._idempotency = idempotency
        self._payloads = payloads
        # Follow-ups are stored with the completions until sent: without a store, handlers emit none.
        self._followups = followups if idempotency is not None else None
        self._timer = timer
        self._wall_clock_ms = wall_clock_ms
        self._runner = Runner(max_concurrent_records)
        self._tracing = tracing
        self._settlement = Settlement(registry, quarantine, backoff, visibility, resender)

    @property
    def uses_idempotency(self) -> bool:
        return self._idempotency is not None

    def handle(self, event: dict[str, Any], context: LambdaContextLike) -> PartialItemFailureResponse:
        records = event.get("Records") or []
        if not records:
            return {"batchItemFailures": []}
        batch = Batch(
            context,
            timer=self._timer,
            now_ms=self._wall_clock_ms(),
            time_reserve_ms=self._time_reserve_ms,
            records=len(records),
            decisions=self._decisions,
            order=ordering_for(records),
        )
        if self._tracing is not None:
            batch.trace = self._tracing.begin()
        if batch.order.sequential:
            batch.confirm_quarantine = self._settlement.confirm_one
        batch.limits = self._limits
        # Offloaded payloads are fetched before the time reserve, when records stop starting.
        parsed = parse_records(records, self._registry, batch.now_ms, self._payloads,
                               batch.deadline(batch.reserve_ms))  # fmt: skip
        items: Iterable[Item] = parsed
        if self._breakers is not None:  # records of a dependency whose breaker is open are neither claimed nor run
            items = list(items)
            self._breakers.gate(items, batch)
        if self._idempotency is not None:  # the batch is parsed and its events claimed together first
            items = list(items)
            claim_events(items, self._idempotency, context.get_remaining_time_in_millis(),
                         batch.deadline(batch.reserve_ms))  # fmt: skip
            batch.commit = GroupCommit(self._idempotency, batch.deadline(batch.commit_floor_ms), self._followups)
            if self._followups is not None and self._followups.queue_urls:
                batch.destinations = self._followups.queue_urls
        try:
            left = self._runner.run(items, batch)
            if self._breakers is not None:
                assert isinstance(items, list)
                self._breakers.settle(items, batch)
            response = self._settlement.settle(event, left, batch)
        finally:
            parsed.close()  # type: ignore[attr-defined]  # a generator: the payload reads of records never taken end with the batch
            self._runner.cancel_leftover_tasks(batch.deadline().seconds_left)
        if batch.trace is not None and self._tracing is not None:
            deadline = batch.deadline()
            self._tracing.send(batch.trace.documents(traced_outcome), stop=lambda: deadline.passed)
        batch.report.log_summary(len(records))
        if self._emf is not None:
            batch.report.publish(self._emf)
            self._emf.write_tenants(busiest_tenants(records, batch.now_ms, self._busiest_tenants))
        return response


def traced_outcome(outcome: object) -> tuple[str, bool]:
    """A handler call's subsegment: its disposition's name, and whether X-Ray marks it an error."""
    disposition = outcome.disposition if isinstance(outcome, Item) else outcome
    if disposition is SUCCEEDED:
        return "succeeded", False
    if disposition is DUPLICATE:
        return "duplicate", False
    if isinstance(disposition, Quarantined):
        return f"quarantined:{disposition.kind}", True
    if isinstance(disposition, Listed):
        return disposition.outcome.value, True
    return "unsettled", True
