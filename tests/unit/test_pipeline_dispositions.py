"""The same record gets the same disposition on a standard and on a FIFO queue (docs/design.md §4)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any

import pydantic
import pytest

from sqs_consumer.errors import NonRetryableError
from sqs_consumer.models import HelloEvent
from sqs_consumer.models.record import RecordInfo
from sqs_consumer.observability import logger
from sqs_consumer.pipeline import BatchConsumer
from sqs_consumer.pipeline.batch import RETURN_US_PER_RECORD, Batch
from sqs_consumer.pipeline.decisions import Decisions
from sqs_consumer.pipeline.ordering import StandardOrder
from sqs_consumer.registry import EventRegistry, Route
from sqs_consumer.retry import NO_BACKOFF
from sqs_consumer.testing import events as sqs
from sqs_consumer.testing.fakes import FakeClock, FakeContext, InMemoryDLQ, InMemoryIdempotency
from tests.conftest import failed_ids

MAX_RECEIVES = 4


class Effects:
    """``hello`` handlers: "bad" raises NonRetryableError, "fail" a retryable error, others succeed."""

    def __init__(self) -> None:
        self.count: Counter[str] = Counter()

    def handle(self, event: HelloEvent, record: RecordInfo) -> None:
        self.count[event.event_id] += 1
        if event.payload.name == "bad":
            raise NonRetryableError("can never succeed")
        if event.payload.name == "fail":
            raise RuntimeError("transient")


def consumer(effects: Effects, store: InMemoryIdempotency, quarantine: InMemoryDLQ, **kwargs: Any) -> BatchConsumer:
    registry = EventRegistry([Route(HelloEvent, effects.handle)])
    return BatchConsumer(registry, quarantine, idempotency=store, max_receive_count=MAX_RECEIVES, **kwargs)


def records(fifo: bool, *bodies: tuple[str, str], receive_count: int = 1) -> list[dict[str, Any]]:
    """Records of (event_id, name) in one message group on FIFO, or on a standard queue."""
    return [
        sqs.record(
            sqs.body("hello", {"name": name}, event_id=event_id),
            receive_count=receive_count,
            group_id="g" if fifo else None,
            sequence_number=index,
        )
        for index, (event_id, name) in enumerate(bodies)
    ]


@pytest.mark.parametrize("fifo", [False, True], ids=["standard", "fifo"])
def test_a_copy_of_a_quarantined_record_is_listed_not_acknowledged_as_a_duplicate(fifo):
    # GIVEN an event whose handler can never succeed, and a copy of it later in the batch
    effects, store, quarantine = Effects(), InMemoryIdempotency(), InMemoryDLQ()
    leader, copy = records(fifo, ("e1", "bad"), ("e1", "bad"))

    # WHEN the batch is handled
    response = consumer(effects, store, quarantine).handle(sqs.event(leader, copy), FakeContext())

    # THEN the leader is quarantined, and the copy, whose effect never happened, is retried
    assert quarantine.message_ids == [leader["messageId"]]
    assert failed_ids(response) == [copy["messageId"]]
    assert effects.count == {"e1": 1}


@pytest.mark.parametrize("fifo", [False, True], ids=["standard", "fifo"])
def test_a_copy_of_a_succeeded_record_is_a_duplicate(fifo):
    effects, store, quarantine = Effects(), InMemoryIdempotency(), InMemoryDLQ()
    leader, copy = records(fifo, ("e1", "ok"), ("e1", "ok"))

    response = consumer(effects, store, quarantine).handle(sqs.event(leader, copy), FakeContext())

    assert failed_ids(response) == []
    assert quarantine.sent == []
    assert effects.count == {"e1": 1}


@pytest.mark.parametrize("fifo", [False, True], ids=["standard", "fifo"])
def test_a_true_duplicate_is_judged_against_the_stored_event_not_an_earlier_record(fifo):
    # GIVEN an event processed before, and a batch where a record reusing its id with another payload
    # comes before a true duplicate of it
    effects, store, quarantine = Effects(), InMemoryIdempotency(), InMemoryDLQ()
    subject = consumer(effects, store, quarantine)
    subject.handle(sqs.event(*records(fifo, ("e1", "stored"))), FakeContext())
    reused, duplicate = records(fifo, ("e1", "other"), ("e1", "stored"))

    # WHEN the batch is handled
    response = subject.handle(sqs.event(reused, duplicate), FakeContext())

    # THEN the reuse is quarantined and the true duplicate acknowledged, as it is alone
    assert failed_ids(response) == []
    assert [(m.source_message_id, m.kind) for m in quarantine.sent] == [(reused["messageId"], "reused_event_id")]
    assert effects.count == {"e1": 1}


@pytest.mark.parametrize("fifo", [False, True], ids=["standard", "fifo"])
def test_reuse_within_a_batch_is_judged_against_the_leading_record_alone(fifo):
    # GIVEN a new event, then two records reusing its id with one other payload
    effects, store, quarantine = Effects(), InMemoryIdempotency(), InMemoryDLQ()
    first, second, third = records(fifo, ("e1", "first"), ("e1", "second"), ("e1", "second"))

    response = consumer(effects, store, quarantine).handle(sqs.event(first, second, third), FakeContext())

    # THEN both are quarantined as reuses of the leading event, neither is a duplicate of the other
    assert failed_ids(response) == []
    assert sorted(quarantine.message_ids) == sorted([second["messageId"], third["messageId"]])
    assert {m.kind for m in quarantine.sent} == {"reused_event_id"}
    assert effects.count == {"e1": 1}


@pytest.mark.parametrize("behind", ["duplicate", "reused", "poison"])
def test_fifo_records_behind_a_failed_record_of_their_group_are_listed_unstarted(behind):
    # GIVEN a stored event, then a FIFO group whose first record fails and whose next record would be a
    # duplicate, a reuse, or poison on its last receive
    effects, store, quarantine = Effects(), InMemoryIdempotency(), InMemoryDLQ()
    subject = consumer(effects, store, quarantine)
    subject.handle(sqs.event(*records(True, ("stored", "x"))), FakeContext())
    failing = sqs.record(sqs.body("hello", {"name": "fail"}, event_id="f1"), group_id="g", sequence_number=1)
    if behind == "poison":
        next_one = sqs.record("{not json", group_id="g", sequence_number=2)
    else:
        name = "x" if behind == "duplicate" else "other"
        next_one = sqs.record(sqs.body("hello", {"name": name}, event_id="stored"), group_id="g", sequence_number=2)
    other_group = sqs.record(sqs.body("hello", {"name": "y"}, event_id="o1"), group_id="h", sequence_number=3)

    # WHEN the batch is handled
    response = subject.handle(sqs.event(failing, next_one, other_group), FakeContext())

    # THEN the record behind the failure is listed unstarted, not acknowledged nor quarantined; the
    # other group went on
    assert failed_ids(response) == [failing["messageId"], next_one["messageId"]]
    assert quarantine.sent == []
    assert effects.count == {"stored": 1, "f1": 1, "o1": 1}


@pytest.mark.parametrize("fifo", [False, True], ids=["standard", "fifo"])
def test_each_success_is_written_as_its_handler_returns_not_at_the_batch_end(fifo):
    # GIVEN handlers that record what the store holds when each one starts
    store = InMemoryIdempotency()
    completed_when_started: list[list[str]] = []

    async def handle(event: HelloEvent, record: RecordInfo) -> None:
        await asyncio.sleep(0.05)  # time enough for the write of the previous success
        completed_when_started.append(list(store.completed))

    subject = BatchConsumer(EventRegistry([Route(HelloEvent, handle)]), InMemoryDLQ(), idempotency=store,
                            max_concurrent_records=1)  # fmt: skip
    batch = records(fifo, ("e1", "a"), ("e2", "b"), ("e3", "c"))

    # WHEN the batch is handled
    subject.handle(sqs.event(*batch), FakeContext())

    # THEN each later handler saw the earlier successes completed in the store
    assert completed_when_started[1:] == [["e1"], ["e1", "e2"]]
    assert store.completed == ["e1", "e2", "e3"]


def test_a_handler_that_runs_deep_into_the_time_reserve_still_has_its_success_written():
    # GIVEN a handler that returns with 400 ms left, inside the part of the reserve kept for returning
    clock, store = FakeClock(), InMemoryIdempotency()

    def slow(event: HelloEvent, record: RecordInfo) -> None:
        clock.advance(11.6)

    subject = BatchConsumer(EventRegistry([Route(HelloEvent, slow)]), InMemoryDLQ(), idempotency=store,
                            time_reserve_ms=5_000, timer=clock)  # fmt: skip
    message = sqs.record(sqs.body("hello", event_id="e1"))

    # WHEN it runs with 12 s left
    response = subject.handle(sqs.event(message), FakeContext(remaining_ms=12_000, clock=clock))

    # THEN it is deleted, and the store knows it completed: a producer's retry is a duplicate
    assert failed_ids(response) == []
    assert store.records["e1"][0] == "COMPLETED"


def test_the_grace_for_leftover_tasks_comes_out_of_the_time_reserve(monkeypatch):
    # GIVEN a handler that leaves a task behind, and 0.85 s left before the part kept for returning
    timeouts: list[float] = []
    real_wait = asyncio.wait

    async def recording_wait(tasks: Any, timeout: float | None = None) -> Any:
        timeouts.append(float(timeout or 0))
        return await real_wait(tasks, timeout=0.01)

    monkeypatch.setattr(asyncio, "wait", recording_wait)

    async def leaves_a_task(event: HelloEvent, record: RecordInfo) -> None:
        asyncio.get_running_loop().create_task(asyncio.sleep(60))

    subject = BatchConsumer(EventRegistry([Route(HelloEvent, leaves_a_task)]), InMemoryDLQ(),
                            time_reserve_ms=900)  # fmt: skip

    # WHEN a batch runs with 1.1 s left (the reserve keeps 225 ms for returning)
    subject.handle(sqs.event(sqs.record(sqs.body("hello"))), FakeContext(remaining_ms=1_100))

    # THEN the leftover task got no more than the time left before that floor
    assert timeouts
    assert timeouts[0] <= (1_100 - 225) / 1000


def test_fifo_a_record_behind_a_failed_one_on_its_last_receive_is_quarantined_as_never_started():
    # GIVEN a FIFO group whose first record fails and whose next one, a stored event, is on its last receive
    effects, store, quarantine = Effects(), InMemoryIdempotency(), InMemoryDLQ()
    subject = consumer(effects, store, quarantine)
    subject.handle(sqs.event(*records(True, ("stored", "x"))), FakeContext())
    failing = sqs.record(sqs.body("hello", {"name": "fail"}, event_id="f1"), group_id="g", sequence_number=1)
    last = sqs.record(sqs.body("hello", {"name": "x"}, event_id="stored"), group_id="g", sequence_number=2,
                      receive_count=MAX_RECEIVES)  # fmt: skip

    # WHEN the batch is handled
    response = subject.handle(sqs.event(failing, last), FakeContext())

    # THEN it is quarantined saying it never started, not acknowledged as the duplicate it would be
    assert failed_ids(response) == [failing["messageId"]]
    assert [(m.source_message_id, m.kind) for m in quarantine.sent] == [(last["messageId"], "not_started")]


@pytest.mark.parametrize("fifo", [False, True], ids=["standard", "fifo"])
def test_a_validator_that_raises_lists_its_record_and_the_batch_goes_on(fifo):
    # GIVEN a model whose validation raises something other than a validation error for one payload
    class Exploding(HelloEvent):
        @pydantic.field_validator("payload")
        @classmethod
        def explode(cls, payload: Any) -> Any:
            if payload.name == "boom":
                raise KeyError("a bug in a validator")
            return payload

    effects = Effects()
    subject = BatchConsumer(EventRegistry([Route(Exploding, effects.handle)]), InMemoryDLQ())
    boom, ok = records(fifo, ("e1", "boom"), ("e2", "ok"))
    if fifo:
        ok = dict(ok, attributes={**ok["attributes"], "MessageGroupId": "other"})
    odd = sqs.record(sqs.body("hello", {"name": "odd"}, event_id="e3"))
    odd["attributes"]["SentTimestamp"] = "not a number"

    # WHEN the batch is handled
    response = subject.handle(sqs.event(boom, ok, odd), FakeContext())

    # THEN the record is listed, the others ran, and nothing escaped
    assert failed_ids(response) == [boom["messageId"]]
    assert effects.count == {"e2": 1, "e3": 1}


class TwoPart:
    """``hello`` handlers with a synchronous part (counted) and an awaitable; "slow" takes ``seconds`` of the
    clock in its awaitable."""

    def __init__(self, clock: FakeClock, seconds: float) -> None:
        self.clock, self.seconds = clock, seconds
        self.sync_part: Counter[str] = Counter()
        self.finished: list[str] = []

    def handle(self, event: HelloEvent, record: RecordInfo) -> Any:
        self.sync_part[event.event_id] += 1
        return self._rest(event)

    async def _rest(self, event: HelloEvent) -> None:
        if event.payload.name == "slow":
            self.clock.advance(self.seconds)
        self.finished.append(event.event_id)


@pytest.mark.parametrize(
    ("seconds", "second_finishes"), [(15.5, True), (19.0, False)], ids=["reserve-left", "past-cutoff"]
)
def test_a_record_whose_handler_was_called_is_never_listed_as_not_started(seconds, second_finishes):
    # GIVEN a standard queue, one record awaited at a time, and a first handler whose awaitable runs into the
    # time reserve (20 s left, 5 s reserved): the second record's handler was called, its awaitable not yet run
    clock, store, quarantine = FakeClock(), InMemoryIdempotency(), InMemoryDLQ()
    handlers = TwoPart(clock, seconds)
    subject = BatchConsumer(EventRegistry([Route(HelloEvent, handlers.handle)]), quarantine, idempotency=store,
                            time_reserve_ms=5_000, max_concurrent_records=1, max_receive_count=MAX_RECEIVES,
                            timer=clock)  # fmt: skip
    first = sqs.record(sqs.body("hello", {"name": "slow"}, event_id="e1"))
    second = sqs.record(sqs.body("hello", {"name": "quick"}, event_id="e2"), receive_count=MAX_RECEIVES)

    # WHEN the batch is handled
    response = subject.handle(sqs.event(first, second), FakeContext(remaining_ms=20_000, clock=clock))

    # THEN the second record is never "not started": awaited within the reserve's part for handlers, or,
    # past it, retried as a handler that did not finish, its claim kept in progress (never released as if
    # it had not run); nothing ran twice
    assert handlers.sync_part == {"e1": 1, "e2": 1}
    assert "e2" not in store.released
    if second_finishes:
        assert failed_ids(response) == [] and quarantine.sent == []
        assert store.records["e2"][0] == "COMPLETED"
    else:
        assert [(m.source_message_id, m.kind) for m in quarantine.sent] == [(second["messageId"], "retries_exhausted")]
        assert "timed out" in quarantine.sent[0].reason
        assert store.records["e2"][0] == "INPROGRESS"
        # and its redelivery, before that claim expires, does not run it again
        again = sqs.record(sqs.body("hello", {"name": "quick"}, event_id="e2"))
        subject.handle(sqs.event(again), FakeContext(remaining_ms=20_000, clock=clock))
        assert handlers.sync_part["e2"] == 1


class UnansweringStore(InMemoryIdempotency):
    """A store that answers no write before its deadline (of ``clock``)."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock

    def settle(self, succeeded: Any, released: Any, deadline: Any, followups: Any = None) -> int:
        self.clock.advance(deadline.seconds_left())
        return len(succeeded)


class SlowLines(logging.Handler):
    """Each log line the consumer writes takes ``seconds`` of the clock: a line's cost on a small share of
    a CPU, where one structured line costs about 0.1 ms (256 MB: 0.15 vCPU)."""

    def __init__(self, clock: FakeClock, seconds: float) -> None:
        super().__init__()
        self.clock, self.seconds, self.lines = clock, seconds, 0

    def emit(self, record: logging.LogRecord) -> None:
        self.clock.advance(self.seconds)
        self.lines += 1


def test_ten_thousand_listed_records_with_a_store_that_does_not_answer_return_before_the_timeout():
    # GIVEN 10,000 records whose handlers fail, a store that answers nothing before its deadline, and
    # log lines that cost 0.1 ms each
    clock = FakeClock()
    lines = SlowLines(clock, 0.000_1)
    subject = BatchConsumer(EventRegistry([Route(HelloEvent, Effects().handle)]), InMemoryDLQ(),
                            idempotency=UnansweringStore(clock), time_reserve_ms=5_000, timer=clock)  # fmt: skip
    batch = [sqs.record(sqs.body("hello", {"name": "fail"}, event_id=f"e{n}")) for n in range(10_000)]
    context = FakeContext(remaining_ms=30_000, clock=clock)

    # WHEN the batch is handled
    logger.addHandler(lines)
    try:
        response = subject.handle(sqs.event(*batch), context)
    finally:
        logger._logger.removeHandler(lines)

    # THEN every record is listed, and the function returned before its timeout: the lines that did not
    # fit were summarised
    assert len(failed_ids(response)) == 10_000
    assert context.get_remaining_time_in_millis() > 0
    assert lines.lines < 100


def test_the_time_kept_for_returning_grows_with_the_batch():
    # GIVEN the same function, at its smallest memory, with batches of 10 and of 10,000 records
    def floors(records: int) -> tuple[float, float]:
        context = FakeContext(memory_limit_in_mb=128)
        batch = Batch(context, timer=time.perf_counter, now_ms=0, time_reserve_ms=5_000, records=records,
                      decisions=Decisions(None, NO_BACKOFF), order=StandardOrder())  # fmt: skip
        return batch.commit_floor_ms, batch.return_floor_ms

    # THEN the larger batch keeps more time for its response and its log lines
    small, large = floors(10), floors(10_000)
    assert small[0] < large[0] and small[1] < large[1]
    assert large[0] - small[0] >= 9_990 * RETURN_US_PER_RECORD / 1000
