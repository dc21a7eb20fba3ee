"""The emulated mapping obeys the settings it reads from moto's Lambda API, read at most once a second."""

from __future__ import annotations

import json
from typing import Any

import pytest

from local.event_source import EventSourceMapping
from local.lambda_api import MappingSettings, MappingState, settings_of
from local.pipeline import least_busy, resolve_environment
from local.sqs_server import Queue
from local.template import MappingSpec, load_plan

SPEC = MappingSpec(
    "Queue", batch_size=10, batching_window_seconds=0, max_concurrency=3, report_batch_item_failures=True
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Reads:
    """GetEventSourceMapping answers, counted."""

    def __init__(self, *answers: dict[str, Any] | Exception) -> None:
        self.answers = list(answers)
        self.count = 0

    def __call__(self) -> dict[str, Any]:
        self.count += 1
        answer = self.answers[min(self.count, len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"State": "Enabled", "ScalingConfig": {"MaximumConcurrency": 5}}, MappingSettings(True, 5)),
        ({"State": "Disabled", "ScalingConfig": {"MaximumConcurrency": 5}}, MappingSettings(False, 5)),
        ({"State": "Enabled"}, MappingSettings(True, 3)),  # no ScalingConfig: the template's
        ({"Enabled": False, "State": "Enabled"}, MappingSettings(False, 3)),
    ],
)
def test_settings_of_reads_state_and_maximum_concurrency(answer, expected):
    assert settings_of(answer, default_concurrency=3) == expected


def test_the_state_is_read_at_most_once_per_ttl_and_then_again():
    clock = Clock()
    reads = Reads({"State": "Enabled"}, {"State": "Disabled", "ScalingConfig": {"MaximumConcurrency": 2}})
    state = MappingState(reads, MappingSettings(True, 3), ttl=1.0, clock=clock)

    assert state.current() == MappingSettings(True, 3)
    clock.now += 0.9
    assert state.current() == MappingSettings(True, 3)
    assert reads.count == 1

    clock.now += 0.2
    assert state.current() == MappingSettings(False, 2)
    assert reads.count == 2


def test_a_failed_read_keeps_the_last_settings_and_records_the_error():
    clock = Clock()
    reads = Reads({"State": "Disabled"}, ConnectionError("moto busy"))
    state = MappingState(reads, MappingSettings(True, 3), ttl=1.0, clock=clock)
    assert state.current() == MappingSettings(False, 3)
    clock.now += 1.0
    assert state.current() == MappingSettings(False, 3)
    assert [type(error) for error in state.errors] == [ConnectionError]


class Settings:
    def __init__(self, settings: MappingSettings) -> None:
        self.settings = settings

    def current(self) -> MappingSettings:
        return self.settings


def mapping(settings: Settings, client: Any = None, instances: int = 4) -> EventSourceMapping:
    invokers: list[Any] = [object()] * instances
    return EventSourceMapping(client, Queue("url", "arn"), SPEC, invokers, wait_time_seconds=1, state=settings)


def test_only_the_first_maximum_concurrency_workers_poll_and_none_while_disabled():
    settings = Settings(MappingSettings(True, 2))
    emulated = mapping(settings)
    assert [emulated.polls(index) for index in range(4)] == [True, True, False, False]

    settings.settings = MappingSettings(True, 4)
    assert [emulated.polls(index) for index in range(4)] == [True] * 4

    settings.settings = MappingSettings(False, 4)
    assert not any(emulated.polls(index) for index in range(4))


def test_without_a_state_the_mapping_polls_at_the_templates_concurrency():
    emulated = EventSourceMapping(
        None,  # type: ignore[arg-type]
        Queue("url", "arn"),
        SPEC,
        [object()] * 4,  # type: ignore[list-item]
        wait_time_seconds=1,
    )
    assert [emulated.polls(index) for index in range(4)] == [True, True, True, False]


class EmptyQueue:
    """A queue with nothing in it that pauses the mapping during the second long poll."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.receives = 0

    def receive_message(self, **_: Any) -> dict[str, Any]:
        self.receives += 1
        if self.receives == 2:
            self.settings.settings = MappingSettings(False, 2)
        return {}


def test_a_worker_waiting_on_an_empty_queue_stops_polling_once_paused():
    settings = Settings(MappingSettings(True, 2))
    queue = EmptyQueue(settings)
    emulated = mapping(settings, client=queue)
    # WHEN a worker gathers a batch and the mapping is paused while it waits
    assert emulated._gather(0) == []
    # THEN it returns after that poll instead of polling on
    assert queue.receives == 2


def test_the_functions_breaker_wiring_resolves_to_the_local_group_and_role(tmp_path):
    # GIVEN a template whose function names its probes' schedule group and role, as the stack writes them
    template = {
        "Resources": {
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {}},
            "Group": {"Type": "AWS::Scheduler::ScheduleGroup", "Properties": {"Name": "Stack-Probes-1A2B"}},
            "ProbeRole": {"Type": "AWS::IAM::Role", "Properties": {}},
            "Function": {"Type": "AWS::Lambda::Function", "Properties": {"Handler": "h.handler", "Environment": {
                "Variables": {"PROBE_SCHEDULE_GROUP": {"Ref": "Group"},
                              "PROBE_ROLE_ARN": {"Fn::GetAtt": ["ProbeRole", "Arn"]}}}}},
            "Mapping": {"Type": "AWS::Lambda::EventSourceMapping", "Properties": {
                "EventSourceArn": {"Fn::GetAtt": ["Queue", "Arn"]}, "FunctionName": {"Ref": "Function"}}},
        }
    }  # fmt: skip
    path = tmp_path / "Stack-local.template.json"
    path.write_text(json.dumps(template))
    plan = load_plan(path)

    environment = resolve_environment(plan, {}, {}, "http://127.0.0.1:1")

    assert plan.schedule_groups == {"Group": "Stack-Probes-1A2B"}
    assert environment["PROBE_SCHEDULE_GROUP"] == "Stack-Probes-1A2B"
    assert environment["PROBE_ROLE_ARN"] == "arn:aws:iam::123456789012:role/Stack-local-ProbeRole"
    assert environment["AWS_ENDPOINT_URL_LAMBDA"] == environment["AWS_ENDPOINT_URL_SCHEDULER"] == "http://127.0.0.1:1"


class Instance:
    def __init__(self, name: str, invoking: bool) -> None:
        self.name = name
        self.invoking = invoking
        self.events: list[dict[str, Any]] = []

    def invoke(self, event: dict[str, Any]) -> str:
        self.events.append(event)
        return self.name


@pytest.mark.parametrize(
    ("busy", "chosen"),
    [((False, False, False), "2"), ((False, False, True), "1"), ((True, False, True), "1"), ((True, True, True), "2")],
)
def test_a_scheduled_invocation_goes_to_the_last_idle_instance_or_waits_behind_the_last(busy, chosen):
    instances = [Instance(str(index), invoking) for index, invoking in enumerate(busy)]
    assert least_busy(instances)({"probe": 1}) == chosen  # type: ignore[arg-type]
    assert [instance.events for instance in instances if instance.name == chosen] == [[{"probe": 1}]]
