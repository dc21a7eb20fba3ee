"""The entry point's breakers: built from the function's settings, and a scheduled probe answered."""

from __future__ import annotations

from sqs_consumer.dependencies import PROBE_KEY, Dependency
from sqs_consumer.dependencies.board import PROBE, BoardWiring, BreakerBoard
from sqs_consumer.dependencies.breaker import BreakerMode, BreakerPolicy
from sqs_consumer.dependencies.control import LambdaMappingControl, SchedulerProbes, probe_event
from sqs_consumer.dependencies.store import InMemoryBreakerStore
from sqs_consumer.handler import build_board, build_limits, handle_probe
from sqs_consumer.models import OrderPlacedEvent
from sqs_consumer.registry import EventRegistry, Route
from sqs_consumer.settings import ConsumerSettings
from sqs_consumer.testing import events as sqs
from sqs_consumer.testing.fakes import FakeClock, FakeMapping, RecordingProbes

DLQ = "https://sqs.us-east-1.amazonaws.com/123456789012/dlq"


def test_breakers_are_built_only_when_the_stage_turns_them_on():
    assert build_board(ConsumerSettings.from_env({"DLQ_URL": DLQ})) is None
    assert build_limits(ConsumerSettings.from_env({"DLQ_URL": DLQ})) is None


def test_the_board_acts_on_the_functions_own_mapping_and_probe_group():
    board = build_board(ConsumerSettings.from_env({
        "DLQ_URL": DLQ, "BREAKERS_ENABLED": "true", "BREAKER_THRESHOLD": "3", "AWS_LAMBDA_FUNCTION_NAME": "consumer",
        "PROBE_SCHEDULE_GROUP": "probes", "PROBE_ROLE_NAME": "consumer-probe",
        "MAPPING_MAX_CONCURRENCY": "10",
    }))  # fmt: skip

    assert board is not None and board.policy.threshold == 3
    wiring = board.wiring
    assert isinstance(wiring.mapping, LambdaMappingControl) and isinstance(wiring.probes, SchedulerProbes)
    assert wiring.max_concurrency == 10


def test_rate_limits_are_read_from_their_json_variable():
    limits = build_limits(ConsumerSettings.from_env({
        "DLQ_URL": DLQ, "DEPENDENCY_RATE_LIMITS": '{"orders-api": {"rate_per_second": 20, "burst": 40}}'}))  # fmt: skip

    assert limits is not None and limits.limits["orders-api"].capacity == 40


def test_a_scheduled_probe_event_probes_the_named_dependency():
    # GIVEN an open breaker of a dependency with a health check that answers
    store, clock, mapping, probes = InMemoryBreakerStore(), FakeClock(1_000.0), FakeMapping(), RecordingProbes()
    board = BreakerBoard(BoardWiring(lambda: store, BreakerPolicy(), mapping, probes, max_concurrency=10, clock=clock))
    board.report({"orders-api": (5, "503")}, [], sqs.QUEUE_ARN)
    registry = EventRegistry([Route(OrderPlacedEvent, lambda event, info: None,
                                    dependencies=[Dependency("orders-api", health_check=lambda: None)])])  # fmt: skip
    clock.advance(15)

    # WHEN Scheduler invokes the function with the probe event
    answer = handle_probe(probe_event("orders-api", PROBE, sqs.QUEUE_ARN)[PROBE_KEY], board, registry)

    # THEN the breaker is closed and the mapping enabled again
    assert answer == {"probed": True, "dependency": "orders-api", "mode": "closed"}
    assert store.states["orders-api"].mode is BreakerMode.CLOSED and mapping.enabled


def test_a_probe_of_an_unknown_dependency_is_ignored():
    registry = EventRegistry([Route(OrderPlacedEvent, lambda event, info: None, dependencies=["orders-api"])])
    board = BreakerBoard(BoardWiring(InMemoryBreakerStore))

    assert handle_probe({"dependency": "billing", "step": PROBE}, board, registry) == {"probed": False}
