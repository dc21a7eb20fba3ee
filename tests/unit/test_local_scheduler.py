"""The local scheduler fires moto's one-time schedules aimed at the function, once, at their time."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from local.emulator import Invocation
from local.scheduler import LocalScheduler, due_at, targets_function

FUNCTION = "SqsConsumer-local-ConsumerFunction"
ARN = f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION}"
NOW = datetime(2026, 12, 6, 7, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "timezone", "expected"),
    [
        ("at(2026-12-06T07:00:30)", None, NOW + timedelta(seconds=30)),
        ("at(2026-12-06T07:00:30)", "UTC", NOW + timedelta(seconds=30)),
        ("at(2026-12-06T08:00:30)", "Europe/Paris", NOW + timedelta(seconds=30)),
        ("rate(5 minutes)", None, None),
        ("cron(0 12 * * ? *)", None, None),
        ("at(2026-12-06 07:00:30)", None, None),
    ],
)
def test_due_at_reads_one_time_expressions_in_their_time_zone(expression, timezone, expected):
    assert due_at(expression, timezone) == expected


@pytest.mark.parametrize(
    ("arn", "expected"),
    [
        (ARN, True),
        (f"{ARN}:live", True),
        (f"{ARN}:3", True),
        (ARN.replace(FUNCTION, "other"), False),
        ("arn:aws:sqs:us-east-1:123456789012:" + FUNCTION, False),
        ("not an arn", False),
    ],
)
def test_targets_function_matches_the_function_and_its_versions_or_aliases(arn, expected):
    assert targets_function(arn, FUNCTION) is expected


class FakeScheduler:
    """moto's Scheduler API as the watcher calls it."""

    def __init__(self) -> None:
        self.schedules: dict[str, dict[str, Any]] = {}
        self.deleted: list[str] = []

    def add(self, name: str, at: datetime, *, arn: str = ARN, after: str = "DELETE", expression: str = "") -> None:
        self.schedules[name] = {
            "Arn": f"arn:aws:scheduler:us-east-1:123456789012:schedule/probes/{name}", "Name": name,
            "GroupName": "probes", "State": "ENABLED", "LastModificationDate": "t0",
            "ScheduleExpression": expression or f"at({at.strftime('%Y-%m-%dT%H:%M:%S')})",
            "Target": {"Arn": arn, "Input": json.dumps({"probe": name})}, "ActionAfterCompletion": after,
        }  # fmt: skip

    def get_paginator(self, name: str) -> Any:
        assert name == "list_schedules"
        fake = self

        class Pages:
            def paginate(self) -> list[dict[str, Any]]:
                return [{"Schedules": list(fake.schedules.values())}]

        return Pages()

    def get_schedule(self, Name: str, GroupName: str) -> dict[str, Any]:  # boto3's names
        return self.schedules[Name]

    def delete_schedule(self, Name: str, GroupName: str) -> None:
        self.deleted.append(Name)
        del self.schedules[Name]


def watcher(client: FakeScheduler, clock: list[datetime]) -> tuple[LocalScheduler, list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []

    def invoke(event: dict[str, Any]) -> Invocation:
        events.append(event)
        return Invocation({"batchItemFailures": []}, function_error=False, duration_seconds=0.01)

    return LocalScheduler(client, FUNCTION, invoke, clock=lambda: clock[0]), events


def fire(scheduler: LocalScheduler) -> None:
    for run in scheduler.tick():
        run.join(5)


def test_a_due_schedule_fires_once_with_its_input_and_is_deleted():
    client, clock = FakeScheduler(), [NOW]
    client.add("probe-a", NOW + timedelta(seconds=10))
    scheduler, events = watcher(client, clock)

    fire(scheduler)
    assert events == []  # not yet

    clock[0] = NOW + timedelta(seconds=10)
    fire(scheduler)
    fire(scheduler)
    assert events == [{"probe": "probe-a"}]
    assert client.deleted == ["probe-a"]
    assert [(fired.name, fired.group) for fired in scheduler.fired] == [("probe-a", "probes")]


def test_a_schedule_kept_after_completion_fires_once_and_stays():
    client, clock = FakeScheduler(), [NOW]
    client.add("probe-b", NOW, after="NONE")
    scheduler, events = watcher(client, clock)
    fire(scheduler)
    fire(scheduler)
    assert events == [{"probe": "probe-b"}]
    assert client.deleted == []
    assert "probe-b" in client.schedules


def test_schedules_for_other_targets_and_recurring_ones_are_reported_not_run():
    client, clock = FakeScheduler(), [NOW]
    client.add("elsewhere", NOW, arn=ARN.replace(FUNCTION, "other"))
    client.add("every-minute", NOW, expression="rate(1 minute)")
    scheduler, events = watcher(client, clock)
    fire(scheduler)
    fire(scheduler)
    assert events == []
    assert sorted(scheduler.skipped) == sorted([
        f"elsewhere: at(2026-12-06T07:00:00) -> {ARN.replace(FUNCTION, 'other')}",
        f"every-minute: rate(1 minute) -> {ARN}",
    ])  # fmt: skip


def test_a_disabled_schedule_does_not_fire():
    client, clock = FakeScheduler(), [NOW]
    client.add("off", NOW)
    client.schedules["off"]["State"] = "DISABLED"
    scheduler, events = watcher(client, clock)
    fire(scheduler)
    assert events == []
