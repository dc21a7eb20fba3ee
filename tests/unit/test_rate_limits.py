"""Rate limits per dependency: a shared token bucket leased in blocks; a record over the rate waits, never fails."""

from __future__ import annotations

from typing import Any

import pytest

from sqs_consumer.dependencies.rate import Bucket, InMemoryTokenStore, RateLimit, RateLimiter
from sqs_consumer.models import OrderPlacedEvent
from sqs_consumer.models.record import RecordInfo
from sqs_consumer.pipeline import BatchConsumer
from sqs_consumer.registry import EventRegistry, Route
from sqs_consumer.testing import events as sqs
from sqs_consumer.testing.fakes import FakeClock, FakeContext, InMemoryDLQ, InMemoryResender
from tests.conftest import failed_ids

ORDER = {"order_id": "o-1", "customer_id": "c-1", "lines": [{"sku": "s", "quantity": 1}]}
LIMIT = RateLimit(rate_per_second=20, burst=20)


class SharedClock(FakeClock):
    """One clock for several instances: each sleep moves it on."""

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)


def limiter(store: InMemoryTokenStore, clock: SharedClock) -> RateLimiter:
    return RateLimiter({"orders-api": LIMIT}, lambda: store, clock=clock, sleep=clock.sleep)


def test_tokens_are_leased_in_blocks_far_below_one_write_per_call():
    store, clock = InMemoryTokenStore(), SharedClock(1_000.0)
    limits = limiter(store, clock)

    for _ in range(200):
        assert limits.acquire(["orders-api"], budget_seconds=60) is None

    assert store.writes <= 200 // LIMIT.block + 2


def test_instances_together_hold_the_rate_over_a_minute():
    # GIVEN 4 instances sharing one bucket of 20/s (burst 20) on one clock
    store, clock = InMemoryTokenStore(), SharedClock(1_000.0)
    instances = [limiter(store, clock) for _ in range(4)]
    start, calls = clock.now, 0

    # WHEN they take turns calling as fast as the tokens allow, for a simulated minute
    while clock.now < start + 60:
        for limits in instances:
            if limits.acquire(["orders-api"], budget_seconds=1) is None:
                calls += 1
        clock.advance(0.01)  # each call takes 10 ms

    # THEN the calls made are the minute's tokens (plus the first burst), within 10 %
    assert 0.9 * (20 * 60) <= calls <= 20 * 60 + LIMIT.capacity


def test_a_dependency_without_a_limit_takes_no_token():
    store, clock = InMemoryTokenStore(), SharedClock()
    assert limiter(store, clock).acquire(["billing"], budget_seconds=0) is None
    assert store.writes == 0


def test_without_time_to_wait_the_answer_is_when_a_token_accrues():
    store, clock = InMemoryTokenStore(), SharedClock(1_000.0)
    store.buckets["orders-api"] = Bucket(tokens=0.0, refilled_at=1_000.0, version=3)

    over = limiter(store, clock).acquire(["orders-api"], budget_seconds=0)

    assert over is not None
    assert over[0] == "orders-api" and over[1] == pytest.approx(0.05)


def test_rate_limit_refuses_a_non_positive_or_infinite_rate():
    for rate in (0, -1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="rate_per_second"):
            RateLimit(rate)


class Orders:
    def __init__(self) -> None:
        self.calls = 0

    def handle(self, event: OrderPlacedEvent, info: RecordInfo) -> None:
        self.calls += 1


SLOW = RateLimit(rate_per_second=0.5, burst=1)  # a token every 2 s: more than a batch below can wait


def consumer(orders: Orders, store: InMemoryTokenStore, clock: SharedClock,
             limit: RateLimit = LIMIT) -> tuple[BatchConsumer, Any]:  # fmt: skip
    registry = EventRegistry([Route(OrderPlacedEvent, orders.handle, dependencies=["orders-api"])])
    resender, dlq = InMemoryResender(), InMemoryDLQ()
    limits = RateLimiter({"orders-api": limit}, lambda: store, clock=clock, sleep=clock.sleep)
    built = BatchConsumer(registry, dlq, max_receive_count=5, limits=limits, resender=resender,
                          time_reserve_ms=1_000)  # fmt: skip
    return built, (resender, dlq)


def record(n: int, receive_count: int = 1) -> dict[str, Any]:
    return sqs.record(sqs.body("order.placed", ORDER, event_id=f"evt_{n}"), message_id=f"m-{n}",
                      receive_count=receive_count)  # fmt: skip


def test_records_over_the_rate_past_the_batchs_time_wait_in_the_queue_and_never_fail():
    # GIVEN a bucket of one token that fills every 2 s, and a batch with 0.5 s to start records
    orders, store, clock = Orders(), InMemoryTokenStore(), SharedClock(1_000.0)
    store.buckets["orders-api"] = Bucket(tokens=1.0, refilled_at=1_000.0, version=1)
    built, (resender, dlq) = consumer(orders, store, clock, SLOW)

    # WHEN a batch of 5 arrives
    response = built.handle(sqs.event(*(record(n) for n in range(5))), FakeContext(remaining_ms=1_500))

    # THEN one ran; the others did not fail: they are listed to come back once their tokens accrue
    assert orders.calls == 1
    assert sorted(failed_ids(response)) == ["m-1", "m-2", "m-3", "m-4"]
    assert dlq.sent == [] and resender.sent == []


def test_records_over_the_rate_within_the_batchs_time_wait_for_their_tokens():
    orders, store, clock = Orders(), InMemoryTokenStore(), SharedClock(1_000.0)
    store.buckets["orders-api"] = Bucket(tokens=0.0, refilled_at=1_000.0, version=1)
    built, _ = consumer(orders, store, clock)

    response = built.handle(sqs.event(*(record(n) for n in range(5))), FakeContext(remaining_ms=30_000))

    assert response == {"batchItemFailures": []}
    assert orders.calls == 5
    assert clock.now > 1_000.0  # it waited for the tokens to accrue


def test_a_record_over_the_rate_on_its_last_receive_is_sent_again():
    orders, store, clock = Orders(), InMemoryTokenStore(), SharedClock(1_000.0)
    store.buckets["orders-api"] = Bucket(tokens=0.0, refilled_at=1_000.0, version=1)
    built, (resender, dlq) = consumer(orders, store, clock, SLOW)

    response = built.handle(sqs.event(record(1, receive_count=5)), FakeContext(remaining_ms=1_500))

    assert response == {"batchItemFailures": []}
    assert len(resender.sent) == 1 and dlq.sent == []


def test_instances_waiting_for_the_same_block_wake_up_spread_over_a_tokens_time():
    # GIVEN an empty bucket, and an instance whose random draw is 0.5
    store, clock = InMemoryTokenStore(), SharedClock(1_000.0)
    store.buckets["orders-api"] = Bucket(tokens=0.0, refilled_at=1_000.0, version=3)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    limits = RateLimiter({"orders-api": LIMIT}, lambda: store, clock=clock, sleep=sleep, jitter=lambda: 0.5)

    # WHEN it waits for a token
    assert limits.acquire(["orders-api"], budget_seconds=60) is None

    # THEN it slept until a block (10 tokens at 20/s) had accrued, and half a token's time more: instances
    # that all wait for that block do not all ask the store for it at one instant, nor the same one first
    assert slept[0] == pytest.approx(0.5 + 0.5 / 20)


class SlowStore(InMemoryTokenStore):
    """A store whose answers take 40 ms, and whose first write loses to another instance's lease."""

    def __init__(self, clock: SharedClock) -> None:
        super().__init__()
        self.clock = clock

    def write(self, name: str, expected_version: int, bucket: Bucket) -> Bucket | None:
        self.clock.advance(0.04)
        if self.writes == 0:
            self.writes += 1
            self.buckets[name] = Bucket(tokens=0.0, refilled_at=self.clock.now - 0.02, version=expected_version + 1)
            return self.buckets[name]
        return super().write(name, expected_version, bucket)


def test_after_losing_a_lease_the_wait_counts_from_the_stores_answer():
    # GIVEN a bucket with tokens, and another instance's lease that wins the race for them
    clock = SharedClock(1_000.0)
    store = SlowStore(clock)
    store.buckets["orders-api"] = Bucket(tokens=20.0, refilled_at=1_000.0, version=3)

    # WHEN this instance cannot wait
    over = RateLimiter({"orders-api": LIMIT}, lambda: store, clock=clock, sleep=clock.sleep).acquire(
        ["orders-api"], budget_seconds=0
    )

    # THEN the token it waits for accrues 50 ms after the winner's lease, 20 ms of which had passed when the
    # store answered: 30 ms from then, not 50 from before the round trip
    assert over is not None
    assert over[1] == pytest.approx(0.03)
