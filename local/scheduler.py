"""EventBridge Scheduler, emulated: one-time schedules kept in moto fire at their time.

moto keeps schedules (CreateSchedule, GetSchedule, ListSchedules, DeleteSchedule) but runs none. This
watcher reads them about once a second; when an enabled ``at(...)`` schedule whose target is the local
function comes due, it invokes the function under the emulator with the target's ``Input`` as the event
(Scheduler invokes Lambda asynchronously, so nothing waits for the answer), then deletes the schedule if
its ``ActionAfterCompletion`` is ``DELETE``, as Scheduler does after a one-time schedule's invocation.
Recurring ``rate(...)`` and ``cron(...)`` schedules are not emulated: they are reported once, not run.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from local.emulator import Invocation

AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")
WATCH_SECONDS = 1.0


def due_at(expression: str, timezone: str | None) -> datetime | None:
    """When an ``at(yyyy-mm-ddThh:mm:ss)`` expression fires, in its time zone (UTC by default); None otherwise."""
    match = AT.match(expression)
    if match is None:
        return None
    local = datetime.fromisoformat(match.group(1))
    return local.replace(tzinfo=ZoneInfo(timezone or "UTC")).astimezone(UTC)


def targets_function(target_arn: str, function_name: str) -> bool:
    """Whether a target ARN is the function's (unqualified, or a version or alias of it)."""
    parts = target_arn.split(":")
    return len(parts) >= 7 and parts[2] == "lambda" and parts[5] == "function" and parts[6] == function_name


@dataclass(frozen=True)
class Fired:
    """One schedule that ran: its name and group, when, and what the invocation returned (or why none)."""

    name: str
    group: str
    at: datetime
    invocation: Invocation | None
    error: str | None = None


class LocalScheduler:
    """Watches moto's schedules and fires the one-time ones aimed at the local function."""

    def __init__(
        self,
        client: Any,
        function_name: str,
        invoke: Callable[[dict[str, Any]], Invocation],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        every: float = WATCH_SECONDS,
    ) -> None:
        self._client = client
        self._function_name = function_name
        self._invoke = invoke
        self._clock = clock
        self._every = every
        self._seen: set[str] = set()  # schedules fired, or reported as not emulated (by ARN + modification)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._runs: list[threading.Thread] = []
        self.fired: list[Fired] = []
        self.skipped: list[str] = []
        self.errors: list[Exception] = []

    def start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop watching; invocations already started finish."""
        self._stopping.set()
        for thread in [*([self._thread] if self._thread else []), *self._runs]:
            thread.join(timeout)

    def _watch(self) -> None:
        while not self._stopping.wait(self._every):
            try:
                self.tick()
            except Exception as error:  # moto busy: look again next second
                self.errors.append(error)

    def tick(self) -> list[threading.Thread]:
        """Fire what is due now; returns the invocations started (each in its own thread)."""
        started = []
        for summary in self._summaries():
            key = f"{summary['Arn']}@{summary.get('LastModificationDate')}"
            if key in self._seen or summary.get("State") != "ENABLED":
                continue
            schedule = self._client.get_schedule(Name=summary["Name"], GroupName=summary["GroupName"])
            due = due_at(schedule["ScheduleExpression"], schedule.get("ScheduleExpressionTimezone"))
            if due is None or not targets_function(schedule["Target"]["Arn"], self._function_name):
                self._seen.add(key)
                target = schedule["Target"]["Arn"]
                self.skipped.append(f"{summary['Name']}: {schedule['ScheduleExpression']} -> {target}")
                continue
            if due <= self._clock():
                self._seen.add(key)
                run = threading.Thread(target=self._fire, args=(schedule,), name=f"schedule-{summary['Name']}")
                run.start()
                self._runs.append(run)
                started.append(run)
        return started

    def _summaries(self) -> list[dict[str, Any]]:
        summaries: list[dict[str, Any]] = []
        for page in self._client.get_paginator("list_schedules").paginate():
            summaries.extend(page.get("Schedules", []))
        return summaries

    def _fire(self, schedule: dict[str, Any]) -> None:
        name, group = schedule["Name"], schedule["GroupName"]
        try:
            event = json.loads(schedule["Target"].get("Input") or "{}")
            invocation = self._invoke(event)
            self.fired.append(Fired(name, group, self._clock(), invocation))
        except Exception as error:  # an invocation that failed to start is reported
            self.fired.append(Fired(name, group, self._clock(), None, f"{type(error).__name__}: {error}"))
        if schedule.get("ActionAfterCompletion") == "DELETE":
            try:
                self._client.delete_schedule(Name=name, GroupName=group)
            except Exception as error:
                self.errors.append(error)
