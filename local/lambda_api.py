"""The function and its event source mapping as records in moto's Lambda API.

The function runs under the emulator (local/emulator.py); moto only keeps its record, so that the
mapping can exist there with the template's settings. The emulated poller reads the mapping's
``Enabled`` and ``ScalingConfig.MaximumConcurrency`` back from moto (``MappingState``): an
``UpdateEventSourceMapping`` made by the function, an operator or a test pauses or resizes it, a
second or so later, as a mapping update takes seconds in AWS.
"""

from __future__ import annotations

import io
import json
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.config import Config

from local.sqs_server import local_client
from local.template import LocalPlan

# The role moto requires a function to name (it checks that the role exists).
ROLE_NAME = "local-consumer-role"
_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
# The account moto answers for.
LOCAL_ACCOUNT = "123456789012"
# How long the poller trusts what it last read of the mapping.
STATE_TTL_SECONDS = 1.0


def lambda_client(endpoint_url: str) -> Any:
    return local_client("lambda", endpoint_url, Config(retries={"mode": "standard", "max_attempts": 3}))


def scheduler_client(endpoint_url: str) -> Any:
    return local_client("scheduler", endpoint_url, Config(retries={"mode": "standard", "max_attempts": 3}))


def role_arn(plan: LocalPlan, logical_id: str) -> str:
    """The local ARN of one of the template's roles (as moto's account names it)."""
    return f"arn:aws:iam::{LOCAL_ACCOUNT}:role/" + f"{plan.stack_name}-{logical_id}"[:64]


def create_schedule_groups(endpoint_url: str, plan: LocalPlan) -> dict[str, str]:
    """The template's EventBridge Scheduler groups, created in moto (the probes' schedules go there)."""
    client = scheduler_client(endpoint_url)
    for name in plan.schedule_groups.values():
        client.create_schedule_group(Name=name)
    return dict(plan.schedule_groups)


def function_name(plan: LocalPlan) -> str:
    """The local function's name: the stack's and the function's, within Lambda's 64 characters."""
    return f"{plan.stack_name}-{plan.function.logical_id}"[:64]


def _placeholder_code() -> bytes:
    """A zip moto accepts as the function's code; the function itself runs under the emulator."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", "def handler(event, context):\n    raise RuntimeError('run by the emulator')\n")
    return buffer.getvalue()


def create_function_record(endpoint_url: str, plan: LocalPlan) -> str:
    """The function's record in moto (with the role moto wants it to name); returns its ARN."""
    iam = local_client("iam", endpoint_url, Config())
    role = iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(_TRUST))["Role"]["Arn"]
    created = lambda_client(endpoint_url).create_function(
        FunctionName=function_name(plan),
        Runtime="python3.14",
        Role=role,
        Handler=plan.function.handler,
        Code={"ZipFile": _placeholder_code()},
        Timeout=plan.function.timeout_seconds,
        MemorySize=plan.function.memory_mb,
    )
    return str(created["FunctionArn"])


def create_mapping(endpoint_url: str, plan: LocalPlan, queue_arn: str) -> str:
    """The template's event source mapping, created in moto; returns its UUID."""
    spec = plan.mapping
    created = lambda_client(endpoint_url).create_event_source_mapping(
        EventSourceArn=queue_arn,
        FunctionName=function_name(plan),
        Enabled=True,
        BatchSize=spec.batch_size,
        MaximumBatchingWindowInSeconds=spec.batching_window_seconds,
        ScalingConfig={"MaximumConcurrency": spec.max_concurrency},
        FunctionResponseTypes=["ReportBatchItemFailures"] if spec.report_batch_item_failures else [],
    )
    return str(created["UUID"])


@dataclass(frozen=True)
class MappingSettings:
    """What the poller obeys of a mapping: whether it polls, and how many batches at once."""

    enabled: bool
    max_concurrency: int


def settings_of(mapping: dict[str, Any], default_concurrency: int) -> MappingSettings:
    """A GetEventSourceMapping answer as the poller reads it (no ScalingConfig: the template's maximum)."""
    scaling = mapping.get("ScalingConfig") or {}
    return MappingSettings(
        enabled=bool(mapping.get("Enabled", mapping.get("State") == "Enabled")),
        max_concurrency=int(scaling.get("MaximumConcurrency", default_concurrency)),
    )


class MappingState:
    """The mapping's settings read from moto at most once per ``ttl`` seconds, shared by every worker.

    A read that fails keeps the last settings read (the mapping does not change because moto was slow);
    the error is kept in ``errors``.
    """

    def __init__(
        self,
        read: Callable[[], dict[str, Any]],
        initial: MappingSettings,
        *,
        ttl: float = STATE_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._settings = initial
        self._ttl = ttl
        self._clock = clock
        self._read_at: float | None = None
        self._lock = threading.Lock()
        self.errors: list[Exception] = []

    @classmethod
    def of(cls, endpoint_url: str, uuid: str, initial: MappingSettings) -> MappingState:
        client = lambda_client(endpoint_url)
        return cls(lambda: dict(client.get_event_source_mapping(UUID=uuid)), initial)

    def current(self) -> MappingSettings:
        with self._lock:
            now = self._clock()
            if self._read_at is None or now - self._read_at >= self._ttl:
                self._read_at = now
                try:
                    self._settings = settings_of(self._read(), self._settings.max_concurrency)
                except Exception as error:  # kept, and the last settings stand
                    self.errors.append(error)
            return self._settings
