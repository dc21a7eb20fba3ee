"""Async handlers of a standard-queue batch overlap, up to the bound; FIFO stays in order."""

from __future__ import annotations

import asyncio

import pytest

from sqs_consumer.models import HelloEvent
from sqs_consumer.models.record import RecordInfo
from sqs_consumer.pipeline import BatchConsumer
from sqs_consumer.registry import EventRegistry, Route
from sqs_consumer.testing import events as sqs
from sqs_consumer.testing.fakes import FakeContext, InMemoryDLQ
from tests.conftest import failed_ids


class OverlapProbe:
    """An async handler that records how many calls are in flight at once."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.max_in_flight = 0
        self.order: list[str] = []

    async def __call__(self, event: HelloEvent, record: RecordInfo) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.order.append(event.payload.name)
        try:
            await asyncio.sleep(0.01)
        finally:
            self.in_flight -= 1


def consumer_with(probe: OverlapProbe, bound: int) -> BatchConsumer:
    return BatchConsumer(EventRegistry([Route(HelloEvent, probe)]), InMemoryDLQ(), max_concurrent_records=bound)


@pytest.mark.parametrize("bound", [1, 4, 10])
def test_consumer_runs_async_handlers_concurrently_up_to_the_bound(bound: int):
    # GIVEN ten records whose handler awaits I/O
    probe = OverlapProbe()
    records = [sqs.record(sqs.body("hello", {"name": str(i)})) for i in range(10)]

    # WHEN the batch is handled with a concurrency bound
    response = consumer_with(probe, bound).handle(sqs.event(*records), FakeContext())

    # THEN exactly `bound` handlers were in flight at the peak, and all succeeded
    assert failed_ids(response) == []
    assert probe.max_in_flight == bound


def test_consumer_runs_fifo_records_one_at_a_time_in_order():
    probe = OverlapProbe()
    records = [
        sqs.record(sqs.body("hello", {"name": str(i)}), group_id=f"g{i % 2}", sequence_number=i) for i in range(6)
    ]

    response = consumer_with(probe, 10).handle(sqs.event(*records), FakeContext())

    assert failed_ids(response) == []
    assert probe.max_in_flight == 1
    assert probe.order == [str(i) for i in range(6)]


def test_consumer_handles_batches_on_successive_invocations():
    # Lambda reuses the process: a second invocation must find a usable event loop.
    probe = OverlapProbe()
    consumer = consumer_with(probe, 5)
    for _ in range(3):
        records = [sqs.record(sqs.body("hello")) for _ in range(5)]
        assert failed_ids(consumer.handle(sqs.event(*records), FakeContext())) == []
    assert probe.max_in_flight == 5
