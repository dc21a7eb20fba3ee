"""Retry with backoff: listed records come back after a delay growing with their receive count."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from sqs_consumer.processing import BatchConsumer
from sqs_consumer.retry import Backoff, SqsVisibility, VisibilityChange, queue_url_from_arn
from sqs_consumer.routes import REGISTRY
from tests.support import sqs_events as sqs
from tests.support.fakes import FakeContext, FakeQuarantine


@dataclass
class RecordingVisibility:
    changes: list[VisibilityChange] = field(default_factory=list)

    def change(self, changes: list[VisibilityChange]) -> None:
        self.changes.extend(changes)


@pytest.mark.parametrize(("receive_count", "ceiling"), [(1, 10), (2, 20), (3, 40), (4, 80), (6, 300), (30, 300)])
def test_backoff_grows_exponentially_up_to_the_cap(receive_count: int, ceiling: int):
    backoff = Backoff(base_seconds=10, cap_seconds=300)
    assert backoff.delay(receive_count, rand=lambda low, high: high) == ceiling
    assert backoff.delay(receive_count, rand=lambda low, high: low) == round(ceiling / 2)


def test_backoff_jitter_stays_within_half_and_full_delay():
    backoff = Backoff(base_seconds=8, cap_seconds=300)
    delays = {backoff.delay(3) for _ in range(200)}
    assert min(delays) >= 16 and max(delays) <= 32
    assert len(delays) > 1


def test_consumer_sets_backoff_for_failures_and_zero_for_records_not_started():
    # GIVEN failures at two receive counts, a success, and a record the deadline stops
    visibility = RecordingVisibility()
    consumer = BatchConsumer(
        REGISTRY, FakeQuarantine(), time_reserve_ms=5_000, max_concurrent_records=1,
        backoff=Backoff(10, 300), visibility=visibility,
    )  # fmt: skip
    first = sqs.record(sqs.body("hello", {"name": "x", "simulate": "fail"}), receive_count=1)
    third = sqs.record(sqs.body("hello", {"name": "x", "simulate": "fail"}), receive_count=3)
    ok = sqs.record(sqs.body("hello"))
    late = sqs.record(sqs.body("hello"))
    context = FakeContext(remaining_ms=[20_000, 20_000, 20_000, 1_000])

    # WHEN the batch is handled
    consumer.handle(sqs.event(first, third, ok, late), context)

    # THEN each listed record gets one change: its backoff, or 0 when it never started
    by_handle = {change.receipt_handle: change.seconds for change in visibility.changes}
    assert set(by_handle) == {first["receiptHandle"], third["receiptHandle"], late["receiptHandle"]}
    assert 5 <= by_handle[first["receiptHandle"]] <= 10
    assert 20 <= by_handle[third["receiptHandle"]] <= 40
    assert by_handle[late["receiptHandle"]] == 0
    assert {change.queue_arn for change in visibility.changes} == {sqs.QUEUE_ARN}


def test_consumer_fifo_group_skipped_records_return_at_once():
    visibility = RecordingVisibility()
    consumer = BatchConsumer(REGISTRY, FakeQuarantine(), backoff=Backoff(10, 300), visibility=visibility)
    failing = sqs.record(sqs.body("hello", {"name": "a", "simulate": "fail"}), group_id="a", sequence_number=1)
    behind = sqs.record(sqs.body("hello"), group_id="a", sequence_number=2)

    consumer.handle(sqs.event(failing, behind), FakeContext())

    by_handle = {change.receipt_handle: change.seconds for change in visibility.changes}
    assert by_handle[behind["receiptHandle"]] == 0
    assert by_handle[failing["receiptHandle"]] >= 5


def test_consumer_without_backoff_changes_nothing():
    visibility = RecordingVisibility()
    consumer = BatchConsumer(REGISTRY, FakeQuarantine(), backoff=Backoff(0, 300), visibility=visibility)
    consumer.handle(sqs.event(sqs.record(sqs.body("hello", {"name": "x", "simulate": "fail"}))), FakeContext())
    assert visibility.changes == []


def test_sqs_visibility_never_raises_when_sqs_fails():
    class Broken:
        def change_message_visibility_batch(self, **params: Any) -> Any:
            raise OSError("SQS unreachable")

    setter = SqsVisibility(client_factory=lambda _: cast(Any, Broken()))
    setter.change([VisibilityChange(sqs.QUEUE_ARN, "rh", 10)])  # no exception: the timeout is the fallback


def test_sqs_visibility_batches_ten_per_call_per_queue():
    calls: list[dict[str, Any]] = []

    class Recording:
        def change_message_visibility_batch(self, **params: Any) -> Any:
            calls.append(params)
            return {"Successful": [], "Failed": []}

    setter = SqsVisibility(client_factory=lambda _: cast(Any, Recording()))
    setter.change([VisibilityChange(sqs.QUEUE_ARN, f"rh-{i}", i) for i in range(23)])
    assert [len(call["Entries"]) for call in calls] == [10, 10, 3]
    assert calls[0]["QueueUrl"] == "https://sqs.us-east-1.amazonaws.com/123456789012/orders-queue"


def test_queue_url_from_arn_with_and_without_endpoint():
    arn = "arn:aws:sqs:eu-west-1:111122223333:orders.fifo"
    assert queue_url_from_arn(arn, None) == "https://sqs.eu-west-1.amazonaws.com/111122223333/orders.fifo"
    assert queue_url_from_arn(arn, "http://127.0.0.1:5000/") == "http://127.0.0.1:5000/111122223333/orders.fifo"
