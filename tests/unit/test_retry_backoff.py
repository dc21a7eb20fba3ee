"""Retry with backoff: listed records come back after a delay growing with their receive count."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from sqs_consumer.budget import MAX_PARALLEL_CALLS, Deadline
from sqs_consumer.pipeline import BatchConsumer
from sqs_consumer.retry import MAX_BACKOFF_SECONDS, Backoff, SqsVisibility, VisibilityChange, queue_url_from_arn
from sqs_consumer.routes import REGISTRY
from sqs_consumer.testing import events as sqs
from sqs_consumer.testing.fakes import FakeClock, FakeContext, InMemoryDLQ
from tests.support.fakes import slow_registry

DEADLINE = Deadline(lambda: 30_000, 1_000)


@dataclass
class RecordingVisibility:
    changes: list[VisibilityChange] = field(default_factory=list)

    def change(self, changes: list[VisibilityChange], deadline: Deadline) -> None:
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
    # (20 s left, a 5 s reserve, 6 s per handler: the fourth would start 2 s before the timeout)
    visibility = RecordingVisibility()
    clock = FakeClock()
    consumer = BatchConsumer(
        slow_registry(clock, 6), InMemoryDLQ(), time_reserve_ms=5_000, max_concurrent_records=1,
        backoff=Backoff(10, 300), visibility=visibility, timer=clock,
    )  # fmt: skip
    first = sqs.record(sqs.body("hello", {"name": "x", "simulate": "fail"}), receive_count=1)
    third = sqs.record(sqs.body("hello", {"name": "x", "simulate": "fail"}), receive_count=3)
    ok = sqs.record(sqs.body("hello"))
    late = sqs.record(sqs.body("hello"))
    context = FakeContext(remaining_ms=20_000, clock=clock)

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
    consumer = BatchConsumer(REGISTRY, InMemoryDLQ(), backoff=Backoff(10, 300), visibility=visibility)
    failing = sqs.record(sqs.body("hello", {"name": "a", "simulate": "fail"}), group_id="a", sequence_number=1)
    behind = sqs.record(sqs.body("hello"), group_id="a", sequence_number=2)

    consumer.handle(sqs.event(failing, behind), FakeContext())

    by_handle = {change.receipt_handle: change.seconds for change in visibility.changes}
    assert by_handle[behind["receiptHandle"]] == 0
    assert by_handle[failing["receiptHandle"]] >= 5


def test_consumer_without_backoff_changes_nothing():
    visibility = RecordingVisibility()
    consumer = BatchConsumer(REGISTRY, InMemoryDLQ(), backoff=Backoff(0, 300), visibility=visibility)
    consumer.handle(sqs.event(sqs.record(sqs.body("hello", {"name": "x", "simulate": "fail"}))), FakeContext())
    assert visibility.changes == []


def test_sqs_visibility_never_raises_when_sqs_fails():
    class Broken:
        def change_message_visibility_batch(self, **params: Any) -> Any:
            raise OSError("SQS unreachable")

    setter = SqsVisibility(client_factory=lambda _: cast(Any, Broken()))
    setter.change([VisibilityChange(sqs.QUEUE_ARN, "rh", 10)], DEADLINE)  # no exception: the timeout is the fallback


def test_sqs_visibility_batches_ten_per_call_per_queue():
    calls: list[dict[str, Any]] = []

    class Recording:
        def change_message_visibility_batch(self, **params: Any) -> Any:
            calls.append(params)
            return {"Successful": [], "Failed": []}

    setter = SqsVisibility(client_factory=lambda _: cast(Any, Recording()))
    setter.change([VisibilityChange(sqs.QUEUE_ARN, f"rh-{i}", i) for i in range(23)], DEADLINE)
    assert sorted(len(call["Entries"]) for call in calls) == [3, 10, 10]
    assert calls[0]["QueueUrl"] == "https://sqs.us-east-1.amazonaws.com/123456789012/orders-queue"


def test_queue_url_from_arn_with_and_without_endpoint():
    arn = "arn:aws:sqs:eu-west-1:111122223333:orders.fifo"
    assert queue_url_from_arn(arn, None) == "https://sqs.eu-west-1.amazonaws.com/111122223333/orders.fifo"
    assert queue_url_from_arn(arn, "http://127.0.0.1:5000/") == "http://127.0.0.1:5000/111122223333/orders.fifo"


def test_queue_url_follows_the_partition_of_the_arn():
    arn = "arn:aws-cn:sqs:cn-north-1:111122223333:orders"
    assert queue_url_from_arn(arn) == "https://sqs.cn-north-1.amazonaws.com.cn/111122223333/orders"


class SlowSqs:
    """ChangeMessageVisibilityBatch that takes ``seconds`` and counts calls in flight."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()

    def change_message_visibility_batch(self, **params: Any) -> Any:
        with self._lock:
            self.calls += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        time.sleep(self.seconds)
        with self._lock:
            self.in_flight -= 1
        return {"Successful": [], "Failed": []}


def test_sqs_visibility_calls_run_in_parallel():
    client = SlowSqs(0.05)
    setter = SqsVisibility(client_factory=lambda _: cast(Any, client))
    setter.change([VisibilityChange(sqs.QUEUE_ARN, f"rh-{i}", 5) for i in range(100)], DEADLINE)
    assert client.calls == 10
    assert client.max_in_flight > 1


def test_sqs_visibility_makes_no_call_past_the_deadline():
    client = SlowSqs(0.0)
    setter = SqsVisibility(client_factory=lambda _: cast(Any, client))
    setter.change([VisibilityChange(sqs.QUEUE_ARN, "rh", 5)], Deadline(lambda: 999, 1_000))
    assert client.calls == 0


def test_sqs_visibility_stops_waiting_at_the_deadline():
    # GIVEN 1,000 changes (100 requests) against an SQS that takes half a second a call, and a 0.2 s budget
    client = SlowSqs(0.5)
    setter = SqsVisibility(client_factory=lambda _: cast(Any, client))
    clock_end = time.monotonic() + 0.2

    def remaining_ms() -> int:
        return int((clock_end - time.monotonic()) * 1000) + 1_000

    setter.change([VisibilityChange(sqs.QUEUE_ARN, f"rh-{i}", 5) for i in range(1_000)], Deadline(remaining_ms, 1_000))

    # THEN the requests queued behind the first ones (one per pooled thread) are never made, once those end
    time.sleep(0.6)
    assert client.calls <= MAX_PARALLEL_CALLS < 100


def test_consumer_counts_the_backoff_calls_in_its_time_reserve():
    # GIVEN every record fails and the function is already inside its reserve's floor when the records end
    # (20 s left, three handlers of 6.6 s each: 200 ms remain, below the 500 ms kept for returning)
    visibility = RecordingDeadlines()
    clock = FakeClock()
    consumer = BatchConsumer(slow_registry(clock, 6.6), InMemoryDLQ(), time_reserve_ms=4_000,
                             backoff=Backoff(1, 8), visibility=visibility, timer=clock)  # fmt: skip
    failing = [sqs.record(sqs.body("hello", {"name": "x", "simulate": "fail"})) for _ in range(3)]
    context = FakeContext(remaining_ms=20_000, clock=clock)

    consumer.handle(sqs.event(*failing), context)

    # THEN the backoff was not attempted: its deadline, the reserve's, had passed (not even the list of
    # changes was built, which for a large batch costs time the response needs)
    assert visibility.deadlines == []


@dataclass
class RecordingDeadlines:
    deadlines: list[Deadline] = field(default_factory=list)

    def change(self, changes: list[VisibilityChange], deadline: Deadline) -> None:
        self.deadlines.append(deadline)


@pytest.mark.parametrize(("base", "cap"), [(10, 5), (10, 0), (1, MAX_BACKOFF_SECONDS + 1)])
def test_backoff_refuses_a_cap_below_its_base_or_beyond_what_sqs_allows(base, cap):
    with pytest.raises(ValueError, match="retry backoff"):
        Backoff(base, cap)


def test_backoff_never_exceeds_what_sqs_accepts():
    backoff = Backoff(base_seconds=MAX_BACKOFF_SECONDS, cap_seconds=MAX_BACKOFF_SECONDS)
    assert backoff.delay(1_000, rand=lambda low, high: high) == MAX_BACKOFF_SECONDS
