"""Reads what the local pipeline needs from a synthesized CloudFormation template."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.settings import pascal_case

# CloudFormation properties of AWS::SQS::Queue that are CreateQueue attributes.
_QUEUE_ATTRIBUTES = (
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "DelaySeconds",
    "MaximumMessageSize",
    "FifoQueue",
    "ContentBasedDeduplication",
)


class TemplateError(ValueError):
    """The template lacks what the local pipeline needs."""


@dataclass(frozen=True)
class QueueSpec:
    logical_id: str
    attributes: dict[str, str]
    dead_letter_target: str | None = None  # logical id of the DLQ
    max_receive_count: int | None = None

    @property
    def fifo(self) -> bool:
        return self.attributes.get("FifoQueue") == "true"


@dataclass(frozen=True)
class TableSpec:
    logical_id: str
    key_schema: list[dict[str, str]]
    attribute_definitions: list[dict[str, str]]
    ttl_attribute: str | None = None


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    handler: str
    timeout_seconds: int
    memory_mb: int
    environment: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MappingSpec:
    queue_logical_id: str
    batch_size: int
    batching_window_seconds: int
    max_concurrency: int
    report_batch_item_failures: bool


@dataclass(frozen=True)
class LocalPlan:
    stack_name: str
    queues: dict[str, QueueSpec]
    function: FunctionSpec
    mapping: MappingSpec
    tables: dict[str, TableSpec] = field(default_factory=dict)
    # Logical ids of the template's S3 buckets (the stage's payload bucket).
    buckets: tuple[str, ...] = ()
    # EventBridge Scheduler groups (logical id -> name: the breakers' probes) and IAM roles (logical ids)
    # the function's environment may name.
    schedule_groups: dict[str, str] = field(default_factory=dict)
    roles: tuple[str, ...] = ()

    @property
    def source_queue(self) -> QueueSpec:
        return self.queues[self.mapping.queue_logical_id]

    @property
    def dead_letter_queue(self) -> QueueSpec:
        target = self.source_queue.dead_letter_target
        if target is None:
            raise TemplateError("the mapped queue has no redrive policy")
        return self.queues[target]


def _cfn_string(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _consumer_mapping(template: dict[str, Any], consumer: str) -> tuple[str, dict[str, Any]]:
    """The event source mapping of ``consumer`` ("" the stack's first), found by its QueueArn output."""
    resources: dict[str, Any] = template["Resources"]
    mappings = [(lid, r) for lid, r in resources.items() if r["Type"] == "AWS::Lambda::EventSourceMapping"]
    if not consumer and len(mappings) == 1:
        return mappings[0]
    outputs = template.get("Outputs", {})
    output = outputs.get(f"{pascal_case(consumer)}QueueArn", {}).get("Value", {})
    if "Fn::GetAtt" not in output:
        names = sorted(
            name.removesuffix("QueueArn").lower() or '""'
            for name in outputs
            if name.endswith("QueueArn") and not name.endswith("DeadLetterQueueArn")
        )
        raise TemplateError(f"no consumer {consumer!r} in the template (its consumers: {', '.join(names) or 'none'})")
    queue_id = output["Fn::GetAtt"][0]
    [found] = [(lid, m) for lid, m in mappings if m["Properties"]["EventSourceArn"]["Fn::GetAtt"][0] == queue_id]
    return found


def _invoked_function(resources: dict[str, Any], mapping: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The function a mapping invokes, directly or through an alias (SnapStart)."""
    target = json.dumps(mapping["Properties"]["FunctionName"])
    for logical_id, resource in resources.items():
        if f'"{logical_id}"' not in target:
            continue
        if resource["Type"] == "AWS::Lambda::Function":
            return logical_id, resource
        if resource["Type"] == "AWS::Lambda::Alias":
            function_id = resource["Properties"]["FunctionName"]["Ref"]
            return function_id, resources[function_id]
    raise TemplateError(f"the event source mapping invokes no function of the template: {target}")


def load_plan(template_path: Path, consumer: str = "") -> LocalPlan:
    """The local plan of one consumer of the template: ``consumer`` names one a stage declares."""
    template = json.loads(template_path.read_text())
    resources: dict[str, Any] = template["Resources"]
    queues = {}
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::SQS::Queue":
            continue
        props = resource.get("Properties", {})
        redrive = props.get("RedrivePolicy") or {}
        target = redrive.get("deadLetterTargetArn", {}).get("Fn::GetAtt", [None])[0]
        queues[logical_id] = QueueSpec(
            logical_id=logical_id,
            attributes={name: _cfn_string(props[name]) for name in _QUEUE_ATTRIBUTES if name in props},
            dead_letter_target=target,
            max_receive_count=int(redrive["maxReceiveCount"]) if redrive else None,
        )
    tables = {}
    for logical_id, resource in resources.items():
        if resource["Type"] not in ("AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable"):
            continue
        props = resource.get("Properties", {})
        ttl = props.get("TimeToLiveSpecification") or {}
        tables[logical_id] = TableSpec(
            logical_id=logical_id,
            key_schema=props["KeySchema"],
            attribute_definitions=props["AttributeDefinitions"],
            ttl_attribute=ttl.get("AttributeName") if ttl.get("Enabled") else None,
        )
    _, mapping = _consumer_mapping(template, consumer)
    function_id, function = _invoked_function(resources, mapping)
    props = function["Properties"]
    function_spec = FunctionSpec(
        logical_id=function_id,
        handler=props["Handler"],
        timeout_seconds=int(props.get("Timeout", 3)),
        memory_mb=int(props.get("MemorySize", 128)),
        environment=dict(props.get("Environment", {}).get("Variables", {})),
    )
    mprops = mapping["Properties"]
    queue_id = mprops["EventSourceArn"]["Fn::GetAtt"][0]
    if queue_id not in queues:
        raise TemplateError(f"the event source mapping reads {queue_id}, which is not a queue of this template")
    mapping_spec = MappingSpec(
        queue_logical_id=queue_id,
        batch_size=int(mprops.get("BatchSize", 10)),
        batching_window_seconds=int(mprops.get("MaximumBatchingWindowInSeconds", 0)),
        # Lambda's default for SQS without a maximum is up to 1,000; locally, two.
        max_concurrency=int(mprops.get("ScalingConfig", {}).get("MaximumConcurrency", 2)),
        report_batch_item_failures="ReportBatchItemFailures" in mprops.get("FunctionResponseTypes", []),
    )
    stack_name = template_path.name.removesuffix(".template.json")
    buckets = tuple(lid for lid, resource in resources.items() if resource["Type"] == "AWS::S3::Bucket")
    groups = {
        lid: str(resource.get("Properties", {}).get("Name", f"{stack_name}-{lid}"))
        for lid, resource in resources.items()
        if resource["Type"] == "AWS::Scheduler::ScheduleGroup"
    }
    roles = tuple(lid for lid, resource in resources.items() if resource["Type"] == "AWS::IAM::Role")
    return LocalPlan(stack_name, queues, function_spec, mapping_spec, tables, buckets, groups, roles)
