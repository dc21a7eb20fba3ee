"""The function acting on its own event source mapping and scheduling its probes: two small ports.

- ``MappingControl``: pause the mapping (``Enabled`` false: Lambda stops polling, so the waiting
  messages spend no receives) and resume it (enabled, ``MaximumConcurrency`` as given: the minimum, 2,
  while a probe's trial runs, then the stage's own). Its adapter finds the mapping's UUID once
  (``ListEventSourceMappings`` of this function and queue), then calls ``UpdateEventSourceMapping``.
- ``ProbeScheduler``: a one-time EventBridge Scheduler schedule, ``at(...)``, that invokes this function
  with a probe event (``{"sqs_consumer_probe": {...}}``) and deletes itself once it has fired.

Both adapters are botocore clients made on first use (never at import, never for a batch whose breakers
stay closed). docs/decisions/058-pause-and-probe.md says why disabling rather than throttling, and why a
schedule rather than an alarm action.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqs_consumer.clients import client_for
from sqs_consumer.dependencies import PROBE_KEY

# What a mapping's MaximumConcurrency can be set to, at least (Lambda's rule).
MIN_MAXIMUM_CONCURRENCY = 2


@dataclass(frozen=True, slots=True)
class MappingView:
    uuid: str
    state: str
    enabled: bool
    max_concurrency: int | None


class MappingControl(Protocol):
    def pause(self, queue_arn: str) -> None: ...

    def resume(self, queue_arn: str, max_concurrency: int | None) -> None: ...

    def describe(self, queue_arn: str) -> MappingView: ...


class ProbeScheduler(Protocol):
    def schedule(self, dependency: str, step: str, at: float, queue_arn: str, target_arn: str) -> None:
        """Invoke ``target_arn`` (this function) with a probe event of ``dependency`` and ``step`` at epoch second
        ``at``."""
        ...


def probe_event(dependency: str, step: str, queue_arn: str) -> dict[str, Any]:
    return {PROBE_KEY: {"dependency": dependency, "step": step, "queue_arn": queue_arn}}


class LambdaMappingControl:
    """``UpdateEventSourceMapping`` on this function's mapping of a queue (its UUID looked up once)."""

    def __init__(self, function_name: str, endpoint_url: str | None = None,
                 client_factory: Callable[[str, str | None], Any] = client_for) -> None:  # fmt: skip
        self._function_name = function_name
        self._endpoint_url = endpoint_url
        self._client_factory = client_factory
        self._client: Any = None
        self._uuids: dict[str, str] = {}

    def _lambda(self) -> Any:
        if self._client is None:
            self._client = self._client_factory("lambda", self._endpoint_url)
        return self._client

    def _uuid(self, queue_arn: str) -> str:
        if queue_arn not in self._uuids:
            found = self._lambda().list_event_source_mappings(
                FunctionName=self._function_name, EventSourceArn=queue_arn
            )
            mappings = found.get("EventSourceMappings", [])
            if not mappings:
                raise LookupError(f"no event source mapping of {self._function_name} reads {queue_arn}")
            self._uuids[queue_arn] = mappings[0]["UUID"]
        return self._uuids[queue_arn]

    def pause(self, queue_arn: str) -> None:
        self._lambda().update_event_source_mapping(UUID=self._uuid(queue_arn), Enabled=False)

    def resume(self, queue_arn: str, max_concurrency: int | None) -> None:
        change: dict[str, Any] = {"UUID": self._uuid(queue_arn), "Enabled": True}
        if max_concurrency is not None:
            change["ScalingConfig"] = {"MaximumConcurrency": max(MIN_MAXIMUM_CONCURRENCY, max_concurrency)}
        self._lambda().update_event_source_mapping(**change)

    def describe(self, queue_arn: str) -> MappingView:
        mapping = self._lambda().get_event_source_mapping(UUID=self._uuid(queue_arn))
        return view_of(mapping)


def view_of(mapping: dict[str, Any]) -> MappingView:
    state = str(mapping.get("State", "Enabled"))
    concurrency = (mapping.get("ScalingConfig") or {}).get("MaximumConcurrency")
    return MappingView(mapping["UUID"], state, state in ("Enabled", "Enabling", "Updating"), concurrency)


def role_arn(function_arn: str, role_name: str) -> str:
    """The ARN of a role of the function's own account and partition (read from the function's ARN)."""
    _, partition, _, _, account, _ = function_arn.split(":", 5)
    return f"arn:{partition}:iam::{account}:role/{role_name}"


class SchedulerProbes:
    """One-time EventBridge Scheduler schedules in the stage's group, named ``probe-<dependency>-<step>-<at>``:
    the IAM policy lets the function create schedules in that group only, with a role that may only
    invoke this function (infra/breaker_controls.py). The role is named, not given by ARN: the stack's
    environment holds plain values only."""

    def __init__(self, group: str, role_name: str, endpoint_url: str | None = None,
                 client_factory: Callable[[str, str | None], Any] = client_for) -> None:  # fmt: skip
        self._group = group
        self._role_name = role_name
        self._endpoint_url = endpoint_url
        self._client_factory = client_factory
        self._client: Any = None

    def schedule(self, dependency: str, step: str, at: float, queue_arn: str, target_arn: str) -> None:
        from botocore.exceptions import ClientError  # noqa: PLC0415  # deferred: botocore

        if not target_arn:
            raise ValueError("no probe scheduled: the function's ARN is not known before its first invocation")
        if self._client is None:
            self._client = self._client_factory("scheduler", self._endpoint_url)
        when = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        try:
            self._client.create_schedule(
                Name=f"probe-{dependency}-{step}-{int(at)}",
                GroupName=self._group,
                ScheduleExpression=f"at({when})",
                ScheduleExpressionTimezone="UTC",
                FlexibleTimeWindow={"Mode": "OFF"},
                ActionAfterCompletion="DELETE",
                Target={
                    "Arn": target_arn,
                    "RoleArn": role_arn(target_arn, self._role_name),
                    "Input": json.dumps(probe_event(dependency, step, queue_arn)),
                },
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConflictException":  # scheduled already
                raise
