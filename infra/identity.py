"""CloudFormation identity: which resources an upgrade would replace, and the record of the stateful ones.

A resource's logical id is its identity to CloudFormation. A template that no longer has an id
deletes that resource (or, with DeletionPolicy Retain, orphans it: kept in the account, out of the
stack) and creates whatever the new id names, empty. A change to one of a few properties (a queue's
``QueueName``, a table's ``KeySchema``) replaces the resource in place of an update. For the queue,
the DLQ, the idempotency table, the payload bucket and the alarm topic this loses data, or the
deduplication that the table is there for, so:

- ``infra/stateful-resources.json`` records, per stage of cdk.json, every stateful resource's
  logical id, type, construct path and replacement properties. ``make stateful-record`` writes it
  from the synthesized templates; a change to it is reviewed as a diff, and the infra tests fail
  when a template no longer matches it, naming the resource, the stage and what to do.
- ``make upgrade-check FROM=<ref>`` (infra/upgrade_check.py) compares a release's templates with
  the working tree's by the same rules.

The replacement rules are the CloudFormation resource reference's "Update requires: Replacement"
properties: the registry schemas' ``createOnlyProperties`` (tests/infra/test_stateful_identity.py
holds this table to cfn-lint's copy of them) and, for DynamoDB, ``KeySchema`` and
``LocalSecondaryIndexes``, which the reference marks Replacement though the schemas leave them out.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "infra" / "stateful-resources.json"
CDK_JSON = ROOT / "cdk.json"

# Resources whose replacement loses what they hold: messages, the DLQ's quarantined ones, the
# processed event_ids, offloaded payloads, the alarm topic's subscriptions, the function's logs.
STATEFUL_TYPES = frozenset(
    {
        "AWS::SQS::Queue",
        "AWS::DynamoDB::Table",
        "AWS::DynamoDB::GlobalTable",
        "AWS::S3::Bucket",
        "AWS::SNS::Topic",
        "AWS::Logs::LogGroup",
    }
)

# Top-level properties whose change makes CloudFormation replace the resource, by type.
REPLACEMENT_PROPERTIES: Mapping[str, tuple[str, ...]] = {
    "AWS::SQS::Queue": ("QueueName", "FifoQueue"),
    "AWS::DynamoDB::Table": ("TableName", "KeySchema", "LocalSecondaryIndexes", "ImportSourceSpecification"),
    "AWS::DynamoDB::GlobalTable": ("TableName", "KeySchema", "LocalSecondaryIndexes"),
    "AWS::S3::Bucket": ("BucketName", "BucketNamePrefix", "BucketNamespace"),
    "AWS::SNS::Topic": ("TopicName", "FifoTopic"),
    "AWS::Logs::LogGroup": ("LogGroupName",),
    "AWS::Lambda::EventSourceMapping": (
        "EventSourceArn",
        "StartingPosition",
        "StartingPositionTimestamp",
        "SelfManagedEventSource",
    ),
    "AWS::Lambda::Function": ("FunctionName", "PackageType", "TenancyConfig"),
    "AWS::Lambda::Alias": ("FunctionName", "Name"),
    "AWS::CodeDeploy::Application": ("ApplicationName", "ComputePlatform"),
    "AWS::CodeDeploy::DeploymentGroup": ("ApplicationName", "DeploymentGroupName"),
    "AWS::Lambda::Version": (
        "FunctionName",
        "Description",
        "CodeSha256",
        "ProvisionedConcurrencyConfig",
        "RuntimePolicy",
    ),
    "AWS::Lambda::Permission": (
        "Action",
        "EventSourceToken",
        "FunctionName",
        "FunctionUrlAuthType",
        "InvokedViaFunctionUrl",
        "Principal",
        "PrincipalOrgID",
        "SourceAccount",
        "SourceArn",
    ),
    "AWS::IAM::Role": ("Path", "RoleName"),
    "AWS::IAM::Policy": (),
    "AWS::SQS::QueuePolicy": (),
    "AWS::SNS::TopicPolicy": (),
    "AWS::S3::BucketPolicy": ("Bucket",),
    "AWS::SNS::Subscription": ("Endpoint", "Protocol", "TopicArn"),
    "AWS::CloudWatch::Alarm": ("AlarmName",),
    "AWS::CloudWatch::Dashboard": ("DashboardName",),
    "AWS::Logs::MetricFilter": ("FilterName", "LogGroupName"),
    "AWS::EC2::SecurityGroup": ("GroupDescription", "GroupName", "VpcId"),
    "AWS::EC2::SecurityGroupEgress": (
        "CidrIp",
        "CidrIpv6",
        "DestinationPrefixListId",
        "DestinationSecurityGroupId",
        "FromPort",
        "GroupId",
        "IpProtocol",
        "ToPort",
    ),
    "AWS::EC2::SecurityGroupIngress": (
        "CidrIp",
        "CidrIpv6",
        "FromPort",
        "GroupId",
        "GroupName",
        "IpProtocol",
        "SourcePrefixListId",
        "SourceSecurityGroupId",
        "SourceSecurityGroupName",
        "SourceSecurityGroupOwnerId",
        "ToPort",
    ),
    "AWS::EC2::VPCEndpoint": (
        "ServiceName",
        "VpcEndpointType",
        "VpcId",
        "ServiceNetworkArn",
        "ResourceConfigurationArn",
        "ServiceRegion",
    ),
    "AWS::Scheduler::ScheduleGroup": ("Name",),
    "AWS::CDK::Metadata": (),
}
# The property that fixes a resource's physical name, where the stack sets one: a new logical id
# with the name an old one holds cannot be created while the old one exists.
NAME_PROPERTIES: Mapping[str, str] = {
    "AWS::SQS::Queue": "QueueName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::DynamoDB::GlobalTable": "TableName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::IAM::Role": "RoleName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::CloudWatch::Dashboard": "DashboardName",
    "AWS::Scheduler::ScheduleGroup": "Name",
}

WHAT_TO_DO = (
    "keep the construct ids on its path (a construct's id, and each parent's, make the logical id), and its "
    "name; or, if the change is meant, run `make stateful-record` and write in CHANGELOG.md how a deployed "
    "stage is upgraded (its data moved or given up)"
)


def construct_path(resource: Mapping[str, Any]) -> str:
    """The CDK construct path a resource came from (its ``aws:cdk:path`` metadata), or ``?``."""
    return str((resource.get("Metadata") or {}).get("aws:cdk:path", "?"))


def replacement_properties(resource: Mapping[str, Any]) -> dict[str, Any]:
    """The resource's properties, of those whose change replaces it, that the template sets."""
    properties = resource.get("Properties") or {}
    return {name: properties[name] for name in REPLACEMENT_PROPERTIES.get(resource["Type"], ()) if name in properties}


def stateful_resources(template: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The template's stateful resources by logical id: type, construct path, replacement properties."""
    return {
        logical_id: {
            "type": resource["Type"],
            "path": construct_path(resource),
            "properties": replacement_properties(resource),
        }
        for logical_id, resource in sorted(template.get("Resources", {}).items())
        if resource["Type"] in STATEFUL_TYPES
    }


def describe(logical_id: str, entry: Mapping[str, Any]) -> str:
    """``ConsumerQueuesQueueD70CDEE6 (AWS::SQS::Queue at SqsConsumer-dev/Consumer/Queues/Queue/Resource,
    QueueName SqsConsumer-dev-queue)``."""
    name = NAME_PROPERTIES.get(entry["type"])
    named = f", {name} {entry['properties'][name]}" if name and name in entry["properties"] else ""
    return f"{logical_id} ({entry['type']} at {entry['path']}{named})"


def physical_name(entry: Mapping[str, Any]) -> Any:
    """The fixed physical name of a recorded resource, or None where CloudFormation generates it."""
    name = NAME_PROPERTIES.get(entry["type"])
    return entry["properties"].get(name) if name else None


def likely_renames(entry: Mapping[str, Any], added: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The added resources that are most likely ``entry`` under a new id: those with its physical name,
    else those of its type."""
    same_type = [other for other, new in sorted(added.items()) if new["type"] == entry["type"]]
    name = physical_name(entry)
    same_name = [other for other in same_type if name is not None and physical_name(added[other]) == name]
    return same_name or same_type


def record_changes(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Each way ``current`` (stage -> stateful resources) departs from the record, one line each."""
    problems = []
    for stage in sorted(recorded.keys() | current.keys()):
        if stage not in current:
            problems.append(f"stage {stage!r} is in {RECORD.name} but not in cdk.json: if it is gone, "
                            "run `make stateful-record`")  # fmt: skip
            continue
        before, now = recorded.get(stage, {}), current[stage]
        added = {key: now[key] for key in now.keys() - before.keys()}
        # A removed id beside an added one of its type is most likely a rename: said together.
        explained: set[str] = set()
        for logical_id in sorted(before.keys() - now.keys()):
            entry = before[logical_id]
            twins = likely_renames(entry, added)
            explained.update(twins)
            renamed = f"; the template has {', '.join(describe(t, added[t]) for t in twins)} instead" if twins else ""
            problems.append(
                f"stage {stage!r}: {describe(logical_id, entry)} is no longer in the template{renamed}: an upgrade "
                f"would delete it (or orphan it, if retained) and create an empty one. To fix: {WHAT_TO_DO}"
            )
        for logical_id in sorted(before.keys() & now.keys()):
            old, new = before[logical_id], now[logical_id]
            changed = [
                f"{name} {json.dumps(old['properties'].get(name))} -> {json.dumps(new['properties'].get(name))}"
                for name in sorted(old["properties"].keys() | new["properties"].keys())
                if old["properties"].get(name) != new["properties"].get(name)
            ]
            if old["type"] != new["type"]:
                changed.insert(0, f"type {old['type']} -> {new['type']}")
            if changed:
                problems.append(
                    f"stage {stage!r}: {describe(logical_id, old)}: {'; '.join(changed)}: an upgrade would replace it "
                    f"(a new, empty one). To fix: {WHAT_TO_DO}"
                )
        for logical_id in sorted(added.keys() - explained):
            problems.append(
                f"stage {stage!r}: {describe(logical_id, added[logical_id])} is a stateful resource the record "
                f"does not have: run `make stateful-record` and review the diff of {RECORD.relative_to(ROOT)}"
            )
    return problems


# What the CDK CLI adds to the app's context: each resource's construct path in its metadata.
CLI_CONTEXT = {"aws:cdk:enable-path-metadata": True}


def cdk_context(cdk_json: Path = CDK_JSON) -> dict[str, Any]:
    """The context of cdk.json: the stages and CDK's feature flags, as `cdk synth` passes them to the app."""
    return dict(json.loads(cdk_json.read_text())["context"])


def synthesize(stages: Sequence[str] | None = None, cdk_json: Path = CDK_JSON) -> dict[str, dict[str, Any]]:
    """Each stage's template (all of cdk.json's by default), synthesized in this process with the app's
    context as `cdk synth` gives it."""
    from aws_cdk import App  # noqa: PLC0415  # jsii starts node: only when a synth is asked for

    from infra.app import build_app  # noqa: PLC0415

    context = cdk_context(cdk_json)
    templates = {}
    for stage in stages or sorted(context["stages"]):
        app = App(context={**context, **CLI_CONTEXT, "stage": stage})
        stack = build_app(app)
        templates[stage] = dict(app.synth().get_stack_artifact(stack.artifact_id).template)
    return templates


def current_record(templates: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    return {stage: stateful_resources(template) for stage, template in sorted(templates.items())}


def read_record(path: Path = RECORD) -> dict[str, Any]:
    return dict(json.loads(path.read_text())) if path.is_file() else {}


def write_record(record: Mapping[str, Any], path: Path = RECORD) -> None:
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.identity",
        description="Record every stage's stateful resources (write), or compare the templates with it (check).",
    )
    parser.add_argument("action", choices=("write", "check"))
    args = parser.parse_args(argv)
    record = current_record(synthesize())
    if args.action == "write":
        before = read_record()
        write_record(record)
        changes = record_changes(before, record)
        total = sum(len(resources) for resources in record.values())
        sys.stdout.write(f"{RECORD.relative_to(ROOT)}: {total} stateful resources in {len(record)} stages, "
                         f"{len(changes)} changes from the previous record (git diff shows them)\n")  # fmt: skip
        return 0
    problems = record_changes(read_record(), record)
    for problem in problems:
        sys.stderr.write(f"{problem}\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
