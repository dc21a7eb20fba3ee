"""Circuit breakers per dependency: the transitions, the board shared by instances, the pipeline's stage."""

from __future__ import annotations

from typing import Any

import pytest

from sqs_consumer.dependencies import Dependency
from sqs_consumer.dependencies.board import PROBE, RESTORE, BoardWiring, BreakerBoard
from sqs_consumer.dependencies.breaker import (
    CLOSED,
    BreakerMode,
    BreakerPolicy,
    BreakerState,
    opened,
    probing,
    trial_taken,
    with_failures,
)
from sqs_consumer.dependencies.store import InMemoryBreakerStore, item_of, state_of
from sqs_consumer.errors import DependencyUnavailable
from sqs_consumer.models import HelloEvent, OrderPlacedEvent
from sqs_consumer.models.record import RecordInfo
from sqs_consumer.pipeline import BatchConsumer
from sqs_consumer.pipeline.breakers import BreakerStage
from sqs_consumer.registry import EventRegistry, Route
from sqs_consumer.retry import Backoff
from sqs_consumer.testing import events as sqs
from sqs_consumer.testing.fakes import (
    FakeClock,
    FakeContext,
    FakeMapping,
    InMemoryDLQ,
    InMemoryIdempotency,
    InMemoryResender,
    RecordingProbes,
)
from tests.conftest import failed_ids

POLICY = BreakerPolicy(threshold=5, window_seconds=10, cool_down_seconds=15, cool_down_cap_seconds=60)
ORDER = {"order_id": "o-1", "customer_id": "c-1", "lines": [{"sku": "s", "quantity": 1}]}
MAX_RECEIVES = 5


# --- transitions -------------------------------------------------------------------------------


def test_with_failures_opens_at_the_threshold_within_the_window():
    state = with_failures(CLOSED, 4, 100.0, POLICY, "503")
    assert state.mode is BreakerMode.CLOSED and state.failures == 4

    opened = with_failures(state, 1, 109.0, POLICY, "503")

    assert opened.mode is BreakerMode.OPEN
    assert opened.probe_at == 109.0 + 15
    assert opened.version == 2


def test_with_failures_outside_the_window_start_a_new_count():
    state = with_failures(CLOSED, 4, 100.0, POLICY, "503")

    later = with_failures(state, 4, 111.0, POLICY, "503")

    assert later.mode is BreakerMode.CLOSED
    assert (later.failures, later.window_started_at) == (4, 111.0)


def test_a_failed_trial_reopens_with_the_cool_down_doubled_up_to_its_cap():
    state = with_failures(CLOSED, 5, 0.0, POLICY, "down")
    cool_downs = []
    for now in (100.0, 200.0, 300.0, 400.0):
        state = with_failures(probing(state, now), 1, now, POLICY, "still down")
        cool_downs.append(state.cool_down_seconds)

    assert cool_downs == [30, 60, 60, 60]
    assert state.opened_at == 0.0  # open since the first opening, for the alarm


def test_failures_while_open_change_nothing():
    state = with_failures(CLOSED, 5, 0.0, POLICY, "down")
    assert with_failures(state, 3, 1.0, POLICY, "down") is state


# --- the board -----------------------------------------------------------------------------------


def board(store: InMemoryBreakerStore, clock: FakeClock, mapping: FakeMapping | None = None,
          probes: RecordingProbes | None = None) -> BreakerBoard:  # fmt: skip
    return BreakerBoard(BoardWiring(lambda: store, POLICY, mapping, probes, max_concurrency=10, clock=clock))


def test_two_instances_reaching_the_threshold_open_the_breaker_once():
    # GIVEN two instances sharing one store, each having read the breaker closed
    store, clock, mapping, probes = InMemoryBreakerStore(), FakeClock(1_000.0), FakeMapping(), RecordingProbes()
    first, second = board(store, clock, mapping, probes), board(store, clock, mapping, probes)
    first.states(["orders-api"]), second.states(["orders-api"])

    # WHEN each reports 3 failures (6 in all, over the threshold of 5)
    first.report({"orders-api": (3, "503")}, [], sqs.QUEUE_ARN)
    second.report({"orders-api": (3, "503")}, [], sqs.QUEUE_ARN)

    # THEN the breaker is open, and the mapping paused and the probe scheduled once
    assert store.states["orders-api"].mode is BreakerMode.OPEN
    assert mapping.changes == [(sqs.QUEUE_ARN, False, 10)]
    assert probes.scheduled == [("orders-api", PROBE, 1_015.0, sqs.QUEUE_ARN)]


def test_states_are_read_once_per_cache_period():
    store, clock = InMemoryBreakerStore(), FakeClock(1_000.0)
    breakers = board(store, clock)

    breakers.states(["orders-api", "billing"])
    breakers.states(["orders-api"])
    clock.advance(2.5)
    breakers.states(["orders-api"])

    assert store.reads == 2


def test_an_unreadable_store_lets_records_run():
    class Broken(InMemoryBreakerStore):
        def read(self, names: Any) -> dict[str, BreakerState]:
            raise ConnectionError("no route to DynamoDB")

    breakers = BreakerBoard(BoardWiring(Broken, POLICY))

    assert breakers.admit(breakers.states(["orders-api"]), sqs.QUEUE_ARN).held == {}


def test_a_probe_whose_health_check_answers_closes_and_ramps_the_mapping_up():
    # GIVEN an open breaker, its mapping paused
    store, clock, mapping, probes = InMemoryBreakerStore(), FakeClock(1_000.0), FakeMapping(), RecordingProbes()
    breakers = board(store, clock, mapping, probes)
    breakers.report({"orders-api": (5, "503")}, [], sqs.QUEUE_ARN)
    clock.advance(15)

    # WHEN the probe runs and the health check answers
    state = breakers.probe(Dependency("orders-api", health_check=lambda: None), PROBE, sqs.QUEUE_ARN)

    # THEN closed, the mapping enabled at the minimum concurrency, then its own once restored
    assert state.mode is BreakerMode.CLOSED
    assert mapping.changes[-1] == (sqs.QUEUE_ARN, True, 2)
    assert probes.scheduled[-1] == ("orders-api", RESTORE, 1_030.0, sqs.QUEUE_ARN)
    breakers.probe(Dependency("orders-api"), RESTORE, sqs.QUEUE_ARN)
    assert mapping.changes[-1] == (sqs.QUEUE_ARN, True, 10)


def test_a_probe_whose_health_check_fails_reopens_for_longer_and_schedules_the_next():
    store, clock, mapping, probes = InMemoryBreakerStore(), FakeClock(1_000.0), FakeMapping(), RecordingProbes()
    breakers = board(store, clock, mapping, probes)
    breakers.report({"orders-api": (5, "503")}, [], sqs.QUEUE_ARN)
    clock.advance(15)

    def down() -> None:
        raise DependencyUnavailable("orders-api", "connection refused")

    state = breakers.probe(Dependency("orders-api", health_check=down), PROBE, sqs.QUEUE_ARN)

    assert state.mode is BreakerMode.OPEN and state.cool_down_seconds == 30
    assert probes.scheduled[-1] == ("orders-api", PROBE, 1_045.0, sqs.QUEUE_ARN)
    assert mapping.enabled is False


def test_a_probe_without_health_check_lets_one_trial_through_at_the_minimum():
    store, clock, mapping, probes = InMemoryBreakerStore(), FakeClock(1_000.0), FakeMapping(), RecordingProbes()
    breakers = board(store, clock, mapping, probes)
    breakers.report({"orders-api": (5, "503")}, [], sqs.QUEUE_ARN)
    clock.advance(15)

    state = breakers.probe(Dependency("orders-api"), PROBE, sqs.QUEUE_ARN)

    assert state.mode is BreakerMode.HALF_OPEN
    assert (mapping.enabled, mapping.max_concurrency) == (True, 2)


# --- the pipeline ---------------------------------------------------------------------------------


class OrdersApi:
    """A handler's downstream: up or down, counting the calls it got."""

    def __init__(self) -> None:
        self.up = False
        self.calls = 0
        self.called: list[str] = []

    def handle(self, event: OrderPlacedEvent, info: RecordInfo) -> None:
        self.calls += 1
        self.called.append(event.event_id)
        if not self.up:
            raise DependencyUnavailable("orders-api", "HTTP 503: down")


class Instance:
    """One instance of the function: a consumer with breakers over the shared store."""

    def __init__(self, store: InMemoryBreakerStore, clock: FakeClock, api: OrdersApi, *, breakers: bool = True):
        self.greeted: list[str] = []
        registry = EventRegistry([
            Route(OrderPlacedEvent, api.handle, dependencies=["orders-api"]),
            Route(HelloEvent, lambda event, info: self.greeted.append(event.event_id)),
        ])  # fmt: skip
        self.mapping, self.probes = FakeMapping(), RecordingProbes()
        self.dlq, self.resender, self.idempotency = InMemoryDLQ(), InMemoryResender(), InMemoryIdempotency()
        self.board = board(store, clock, self.mapping, self.probes)
        self.consumer = BatchConsumer(
            registry, self.dlq, max_receive_count=MAX_RECEIVES, backoff=Backoff(10, 300),
            idempotency=self.idempotency, breakers=BreakerStage(self.board) if breakers else None,
            resender=self.resender, time_reserve_ms=1_000,
        )  # fmt: skip

    def handle(self, *records: dict[str, Any]) -> dict[str, Any]:
        return dict(self.consumer.handle(sqs.event(*records), FakeContext()))


def orders(count: int, receive_count: int = 1, prefix: str = "evt") -> list[dict[str, Any]]:
    return [sqs.record(sqs.body("order.placed", ORDER, event_id=f"{prefix}_{n}"), message_id=f"m-{prefix}-{n}",
                       receive_count=receive_count) for n in range(count)]  # fmt: skip


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_000.0)


def test_failures_past_the_threshold_open_the_breaker_and_pause_the_mapping(clock: FakeClock):
    # GIVEN the orders API down
    api, store = OrdersApi(), InMemoryBreakerStore()
    instance = Instance(store, clock, api)

    # WHEN a batch of 6 orders fails
    response = instance.handle(*orders(6))

    # THEN all are listed, the breaker is open, the mapping paused and a probe scheduled
    assert len(failed_ids(response)) == 6
    assert store.states["orders-api"].mode is BreakerMode.OPEN
    assert instance.mapping.enabled is False
    assert [step for _, step, _, _ in instance.probes.scheduled] == [PROBE]
    assert instance.dlq.sent == []


def test_while_open_dependent_handlers_are_not_called_nor_claimed_and_others_run(clock: FakeClock):
    # GIVEN an open breaker
    api, store = OrdersApi(), InMemoryBreakerStore()
    instance = Instance(store, clock, api)
    instance.handle(*orders(5))
    calls, claims = api.calls, len(instance.idempotency.claims)
    clock.advance(3)  # past the cache: the state is read again

    # WHEN a batch mixes orders and greetings
    hello = sqs.record(sqs.body("hello", event_id="evt_hello"), message_id="m-hello")
    response = instance.handle(*orders(3, prefix="later"), hello)

    # THEN the orders wait without their handler being called or their event claimed; the greeting runs
    assert sorted(failed_ids(response)) == ["m-later-0", "m-later-1", "m-later-2"]
    assert api.calls == calls
    assert instance.idempotency.claims[claims:] == [["evt_hello"]]
    assert instance.greeted == ["evt_hello"]


def test_a_waiting_record_on_its_last_receive_is_sent_again_not_quarantined(clock: FakeClock):
    # GIVEN an open breaker
    api, store = OrdersApi(), InMemoryBreakerStore()
    instance = Instance(store, clock, api)
    instance.handle(*orders(5))

    # WHEN a record arrives on its last allowed receive
    last = orders(1, receive_count=MAX_RECEIVES, prefix="last")[0]
    response = instance.handle(last)

    # THEN it is sent again with its body and attributes, delayed until the probe, and deleted
    assert response == {"batchItemFailures": []}
    assert instance.dlq.sent == []
    [copy] = instance.resender.sent
    assert (copy.body, copy.queue_arn) == (last["body"], last["eventSourceARN"])
    assert 1 <= copy.delay_s <= 15


def test_a_handler_failing_on_the_last_receive_is_sent_again_when_its_failures_open_the_breaker(clock: FakeClock):
    api, store = OrdersApi(), InMemoryBreakerStore()
    instance = Instance(store, clock, api)

    response = instance.handle(*orders(5, receive_count=MAX_RECEIVES))

    assert response == {"batchItemFailures": []}
    assert len(instance.resender.sent) == 5
    assert instance.dlq.sent == []


def test_a_lone_unavailable_failure_on_the_last_receive_is_quarantined_as_retries_exhausted(clock: FakeClock):
    api, store = OrdersApi(), InMemoryBreakerStore()
    instance = Instance(store, clock, api)

    response = instance.handle(*orders(1, receive_count=MAX_RECEIVES))

    assert response == {"batchItemFailures": []}
    assert [message.kind for message in instance.dlq.sent] == ["retries_exhausted"]
    assert store.states["orders-api"].mode is BreakerMode.CLOSED


def test_a_refused_resend_leaves_the_record_listed(clock: FakeClock):
    api, store = OrdersApi(), InMemoryBreakerStore()
    instance = Instance(store, clock, api)
    instance.resender.fail = True

    response = instance.handle(*orders(5, receive_count=MAX_RECEIVES))

    assert len(failed_ids(response)) == 5
    assert instance.dlq.sent == []


TRACE = "Root=1-6942a1b0-5f3c7e0a9b1d2c3e4f506172;Parent=53995c3f42cd8ad8;Sampled=1"
TRACE_ID = "1-6942a1b0-5f3c7e0a9b1d2c3e4f506172"


def test_a_record_sent_again_keeps_its_trace_header_and_its_line_names_event_and_trace(clock: FakeClock, logs):
    # GIVEN an open breaker, and a record of a traced producer on its last allowed receive
    instance = Instance(InMemoryBreakerStore(), clock, OrdersApi())
    instance.handle(*orders(5))
    last = sqs.record(sqs.body("order.placed", ORDER, event_id="evt_traced"), message_id="m-traced",
                      receive_count=MAX_RECEIVES, trace_header=TRACE)  # fmt: skip
    logs.clear()

    # WHEN it is sent again to its queue
    assert instance.handle(last) == {"batchItemFailures": []}

    # THEN the copy carries the record's trace header, and the line about it names its event and trace
    [copy] = instance.resender.sent
    assert copy.trace_header == TRACE
    [line] = [line for line in logs.lines if line["message"].startswith("Record sent again to its queue")]
    assert (line["message_id"], line["event_id"], line["trace_id"]) == ("m-traced", "evt_traced", TRACE_ID)


def test_a_refused_resend_line_names_the_event_and_its_trace(clock: FakeClock, logs):
    instance = Instance(InMemoryBreakerStore(), clock, OrdersApi())
    instance.resender.fail = True
    records = [sqs.record(sqs.body("order.placed", ORDER, event_id=f"evt_{n}"), message_id=f"m-{n}",
                          receive_count=MAX_RECEIVES, trace_header=TRACE) for n in range(5)]  # fmt: skip

    instance.handle(*records)

    refused = [line for line in logs.lines if line["message"] == "Record not sent again; it will be retried"]
    named = sorted((line["message_id"], line["event_id"]) for line in refused)
    assert named == [(f"m-{n}", f"evt_{n}") for n in range(5)]
    assert {line["trace_id"] for line in refused} == {TRACE_ID}


def test_without_breakers_the_outage_fills_the_dlq(clock: FakeClock):
    api, store = OrdersApi(), InMemoryBreakerStore()
    instance = Instance(store, clock, api, breakers=False)

    instance.handle(*orders(5, receive_count=MAX_RECEIVES))

    assert [message.kind for message in instance.dlq.sent] == ["retries_exhausted"] * 5
    assert instance.resender.sent == []


def test_a_successful_trial_closes_a_half_open_breaker_and_every_event_runs_once(clock: FakeClock):
    # GIVEN an open breaker whose probe (no health check) let a trial through
    api, store = OrdersApi(), InMemoryBreakerStore()
    instance = Instance(store, clock, api)
    instance.handle(*orders(5))
    clock.advance(15)
    instance.board.probe(Dependency("orders-api"), PROBE, sqs.QUEUE_ARN)
    clock.advance(3)

    # WHEN the API is back and the waiting records come again
    api.up = True
    calls = api.calls
    first = instance.handle(*orders(5, receive_count=2))

    # THEN one record is the trial: it succeeds and closes the breaker; the others wait for the trial's answer
    assert api.calls == calls + 1
    assert sorted(failed_ids(first)) == [f"m-evt-{n}" for n in range(1, 5)]
    assert store.states["orders-api"].mode is BreakerMode.CLOSED
    assert instance.probes.scheduled[-1][1] == RESTORE

    # AND once back, they run (the breaker closed), each event once
    clock.advance(15)
    assert instance.handle(*orders(5, receive_count=3)) == {"batchItemFailures": []}
    assert sorted(instance.idempotency.completed) == [f"evt_{n}" for n in range(5)]
    assert api.calls == calls + 5


def test_an_open_breaker_whose_probe_is_overdue_lets_one_trial_through(clock: FakeClock):
    # GIVEN an open breaker whose scheduled probe never came (cool-down 15 s, plus as much again)
    api, store = OrdersApi(), InMemoryBreakerStore()
    instance = Instance(store, clock, api)
    instance.handle(*orders(5))
    clock.advance(31)
    api.up = True
    calls = api.calls

    response = instance.handle(*orders(2, receive_count=2))

    assert failed_ids(response) == ["m-evt-1"]
    assert api.calls == calls + 1
    assert store.states["orders-api"].mode is BreakerMode.CLOSED


def test_half_open_one_record_of_one_instance_is_the_trial_every_other_waits(clock: FakeClock):
    # GIVEN two instances over one store, the breaker half-open after its probe, the API still down
    api, store = OrdersApi(), InMemoryBreakerStore()
    first, second = Instance(store, clock, api), Instance(store, clock, api)
    first.handle(*orders(5))
    clock.advance(15)
    first.board.probe(Dependency("orders-api"), PROBE, sqs.QUEUE_ARN)
    calls = api.calls

    # WHEN both get a batch at once: the second reads the state before the first has taken the trial
    second.board.states(["orders-api"])
    a = first.handle(*orders(10, receive_count=2, prefix="a"))
    b = second.handle(*orders(10, receive_count=2, prefix="b"))

    # THEN one call in all; every record waits (the trial's failure reopened the breaker for 30 s)
    assert api.calls == calls + 1
    assert len(failed_ids(a)) == len(failed_ids(b)) == 10
    state = store.states["orders-api"]
    assert (state.mode, state.cool_down_seconds) == (BreakerMode.OPEN, 30)
    assert first.dlq.sent == second.dlq.sent == []


def test_a_trial_prefers_a_record_with_receives_left_and_one_on_its_last_is_sent_again(clock: FakeClock):
    # GIVEN a half-open breaker, the API still down
    api, store = OrdersApi(), InMemoryBreakerStore()
    instance = Instance(store, clock, api)
    instance.handle(*orders(5))
    clock.advance(15)
    instance.board.probe(Dependency("orders-api"), PROBE, sqs.QUEUE_ARN)

    # WHEN a batch holds records on their last receive and one with receives left
    last = orders(2, receive_count=MAX_RECEIVES, prefix="last")
    spare = orders(1, receive_count=2, prefix="spare")
    response = instance.handle(*last, *spare)

    # THEN the trial is the one with receives left; those on their last receive are sent again, none listed
    assert api.called[-1:] == ["spare_0"]
    assert failed_ids(response) == ["m-spare-0"]
    assert sorted(copy.body for copy in instance.resender.sent) == sorted(record["body"] for record in last)
    assert instance.dlq.sent == []

    # AND a trial record that is on its last receive (no other to choose) is sent again when the trial fails
    clock.advance(30)
    instance.board.probe(Dependency("orders-api"), PROBE, sqs.QUEUE_ARN)
    assert instance.handle(*orders(1, receive_count=MAX_RECEIVES, prefix="only")) == {"batchItemFailures": []}
    assert len(instance.resender.sent) == 3
    assert instance.dlq.sent == []


def test_a_failed_trial_whose_reopening_is_not_written_still_sends_its_last_receive_again(clock: FakeClock):
    # GIVEN a half-open breaker, and a store that takes this batch's trial, then refuses every write
    class OneMoreWrite(InMemoryBreakerStore):
        refusing = False

        def write(self, name: str, expected_version: int, state: BreakerState) -> BreakerState | None:
            if self.refusing:
                raise ConnectionError("throttled")
            self.refusing = state.trial_at is not None
            return super().write(name, expected_version, state)

    api, store = OrdersApi(), OneMoreWrite()
    instance = Instance(store, clock, api)
    instance.handle(*orders(5))
    clock.advance(15)
    instance.board.probe(Dependency("orders-api"), PROBE, sqs.QUEUE_ARN)

    # WHEN the trial, on its last receive, fails (the failure counted nowhere: the breaker stays half-open)
    response = instance.handle(*orders(1, receive_count=MAX_RECEIVES, prefix="last"))

    # THEN it is not quarantined nor listed: its breaker is not closed, so it is sent again
    assert api.called[-1:] == ["last_0"]
    assert store.states["orders-api"].mode is BreakerMode.HALF_OPEN
    assert response == {"batchItemFailures": []}
    assert instance.dlq.sent == []
    assert len(instance.resender.sent) == 1


def test_records_held_by_an_overdue_probe_wait_for_the_fallback_not_a_second(clock: FakeClock):
    # GIVEN an open breaker 5 s past its probe time (the probe late, not yet taken over by an instance)
    api, store = OrdersApi(), InMemoryBreakerStore()
    instance = Instance(store, clock, api)
    instance.handle(*orders(5))
    clock.advance(20)

    # WHEN a record on its last receive comes
    instance.handle(*orders(1, receive_count=MAX_RECEIVES, prefix="late"))

    # THEN its copy waits until an instance may run the trial itself (10 s), not 1 s (a receive a second)
    assert [copy.delay_s for copy in instance.resender.sent] == [10]


def test_a_trial_lease_left_by_a_killed_instance_passes_to_another(clock: FakeClock):
    api, store = OrdersApi(), InMemoryBreakerStore()
    first, second = Instance(store, clock, api), Instance(store, clock, api)
    first.handle(*orders(5))
    clock.advance(15)
    first.board.probe(Dependency("orders-api"), PROBE, sqs.QUEUE_ARN)
    assert first.board.admit(first.board.states(["orders-api"]), sqs.QUEUE_ARN).trials == {"orders-api"}
    # (first is killed here, its trial never reported)
    clock.advance(3)
    assert second.board.admit(second.board.states(["orders-api"]), sqs.QUEUE_ARN).trials == frozenset()

    clock.advance(12)  # the lease (the cool-down's start, 15 s) is over
    api.up = True
    response = second.handle(*orders(1, receive_count=2, prefix="again"))

    assert response == {"batchItemFailures": []}
    assert store.states["orders-api"].mode is BreakerMode.CLOSED


def test_the_trial_is_stored_and_read_back_by_the_dynamodb_adapter():
    state = trial_taken(probing(opened(CLOSED, 1_000.0, 15, "breaker", "503"), 1_015.0), 1_016.5)

    assert state_of(item_of("orders-api", state)) == state
    assert "trial_at" not in item_of("orders-api", probing(state, 1_020.0))


def test_a_fifo_record_waiting_on_its_last_receive_is_quarantined_not_resent(clock: FakeClock):
    api, store = OrdersApi(), InMemoryBreakerStore()
    instance = Instance(store, clock, api)
    instance.handle(*orders(5))
    fifo = sqs.record(sqs.body("order.placed", ORDER, event_id="evt_fifo"), message_id="m-fifo", group_id="g",
                      receive_count=MAX_RECEIVES)  # fmt: skip

    instance.handle(fifo)

    assert instance.resender.sent == []
    assert [message.kind for message in instance.dlq.sent] == ["not_started"]


def test_a_closed_breaker_costs_one_store_read_per_cache_period_and_no_write(clock: FakeClock):
    # GIVEN the orders API up and its breaker closed
    api, store = OrdersApi(), InMemoryBreakerStore()
    api.up = True
    instance = Instance(store, clock, api)

    # WHEN three batches of 10 orders run within the cache period
    for batch in range(3):
        assert instance.handle(*orders(10, prefix=f"b{batch}")) == {"batchItemFailures": []}

    # THEN the breaker's state was read once, and never written
    assert (store.reads, store.writes) == (1, 0)


def test_a_batch_without_dependencies_never_reads_the_breakers(clock: FakeClock):
    api, store = OrdersApi(), InMemoryBreakerStore()
    instance = Instance(store, clock, api)

    instance.handle(*(sqs.record(sqs.body("hello", event_id=f"evt_h{n}")) for n in range(10)))

    assert (store.reads, store.writes) == (0, 0)


def test_an_undeclared_dependency_failing_opens_no_breaker_and_is_quarantined_on_the_last_receive(clock: FakeClock):
    # GIVEN a handler that names a dependency its route does not declare
    store = InMemoryBreakerStore()

    def handle(event: HelloEvent, info: RecordInfo) -> None:
        raise DependencyUnavailable("billing-api", "HTTP 503")

    consumer = BatchConsumer(EventRegistry([Route(HelloEvent, handle)]), dlq := InMemoryDLQ(), max_receive_count=5,
                             breakers=BreakerStage(board(store, clock)), resender=InMemoryResender())  # fmt: skip

    # WHEN 5 records fail so on their last receive
    records = [sqs.record(sqs.body("hello", event_id=f"e{n}"), receive_count=5) for n in range(5)]
    consumer.handle(sqs.event(*records), FakeContext())

    # THEN no breaker is opened (none would be probed), and they are quarantined as any failure
    assert store.writes == 0
    assert [message.kind for message in dlq.sent] == ["retries_exhausted"] * 5


def test_each_change_and_each_minute_open_writes_an_emf_document_the_alarm_reads(capsys: pytest.CaptureFixture[str]):
    import json

    # GIVEN a board that writes metrics, whose breaker opens for 5 minutes
    store, clock = InMemoryBreakerStore(), FakeClock(1_000.0)
    policy = BreakerPolicy(cool_down_seconds=300, cool_down_cap_seconds=600)
    breakers = BreakerBoard(BoardWiring(lambda: store, policy, metrics=("SqsConsumer/dev", "consumer"), clock=clock))
    breakers.report({"orders-api": (5, "503")}, [], sqs.QUEUE_ARN)

    # WHEN batches meet it open over the next two minutes
    for _ in range(4):
        clock.advance(40)
        breakers.admit(breakers.states(["orders-api"]), sqs.QUEUE_ARN)

    # THEN the change, then the open time once a minute at most, under the service alone and per dependency
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [d.get("BreakerTransitions") for d in documents] == [1.0, None, None]
    assert [d["BreakerOpenSeconds"] for d in documents] == [0.0, 40.0, 120.0]
    assert [d["BreakerOpen"] for d in documents] == [1.0, 1.0, 1.0]
    directive = documents[0]["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "SqsConsumer/dev"
    assert directive["Dimensions"] == [["service"], ["service", "dependency"]]
    assert (documents[0]["service"], documents[0]["dependency"]) == ("consumer", "orders-api")


def test_an_async_handler_failing_on_the_last_receive_is_sent_again_once_its_failures_open_the_breaker(
    clock: FakeClock,
):
    # GIVEN an async handler of the orders API, which is down
    async def post(event: OrderPlacedEvent, info: RecordInfo) -> None:
        raise DependencyUnavailable("orders-api", "connection reset")

    store, resender, dlq = InMemoryBreakerStore(), InMemoryResender(), InMemoryDLQ()
    consumer = BatchConsumer(
        EventRegistry([Route(OrderPlacedEvent, post, dependencies=["orders-api"])]), dlq,
        max_receive_count=MAX_RECEIVES, backoff=Backoff(10, 300), idempotency=InMemoryIdempotency(),
        breakers=BreakerStage(board(store, clock, FakeMapping(), RecordingProbes())), resender=resender,
        time_reserve_ms=1_000,
    )  # fmt: skip

    # WHEN a batch on its last receive fails, awaited
    response = consumer.handle(sqs.event(*orders(6, receive_count=MAX_RECEIVES)), FakeContext())

    # THEN the breaker opened and every record went back as a copy: none listed, none quarantined
    assert store.states["orders-api"].mode is BreakerMode.OPEN
    assert response == {"batchItemFailures": []}
    assert len(resender.sent) == 6
    assert dlq.sent == []


@pytest.mark.parametrize(("receive_count", "resent"), [(MAX_RECEIVES - 2, False), (MAX_RECEIVES - 1, True)])
def test_a_waiting_record_is_sent_again_one_receive_before_its_last(clock: FakeClock, receive_count: int, resent: bool):
    # GIVEN an open breaker
    api, store = OrdersApi(), InMemoryBreakerStore()
    instance = Instance(store, clock, api)
    instance.handle(*orders(5))

    # WHEN a record comes with receive_count receives spent
    response = instance.handle(*orders(1, receive_count=receive_count, prefix="held"))

    # THEN with one receive to spare it is sent again (a receive the function never sees cannot move it to the
    # DLQ); before that it waits in the queue
    assert len(instance.resender.sent) == int(resent)
    assert failed_ids(response) == ([] if resent else ["m-held-0"])


def test_a_fifo_record_waits_on_its_spare_receive_and_is_quarantined_only_on_its_last(clock: FakeClock):
    api, store = OrdersApi(), InMemoryBreakerStore()
    instance = Instance(store, clock, api)
    instance.handle(*orders(5))
    fifo = sqs.record(sqs.body("order.placed", ORDER, event_id="evt_fifo"), message_id="m-fifo", group_id="g",
                      receive_count=MAX_RECEIVES - 1)  # fmt: skip

    assert failed_ids(instance.handle(fifo)) == ["m-fifo"]
    assert (instance.resender.sent, instance.dlq.sent) == ([], [])
