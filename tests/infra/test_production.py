"""Production readiness of the synthesized stack: alarms that reach someone, concurrency that fits
every account, producers, VPC, secrets and stage hygiene (one synth per configuration)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from infra.settings import StackSettings, StackSettingsError
from tests.infra.conftest import synth

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "docs" / "runbook.md"
STAGES = json.loads((ROOT / "cdk.json").read_text())["context"]["stages"]
TOPIC = "arn:aws:sns:eu-west-1:123456789012:platform-alarms"
SNS_SOURCE = "arn:aws:sns:eu-west-1:123456789012:orders"
RULE_SOURCE = "arn:aws:events:eu-west-1:123456789012:rule/orders-to-queue"
VPC = {
    "vpc_id": "vpc-0123456789abcdef0",
    "availability_zones": ["eu-west-1a", "eu-west-1b"],
    "private_subnet_ids": ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"],
    "private_subnet_route_table_ids": ["rtb-0123456789abcdef0", "rtb-0fedcba9876543210"],
}
FULL: dict[str, Any] = {
    "alarm_topic_arn": TOPIC, "provisioned_pollers": {"minimum": 2, "maximum": 20},
    "producer_sns_topics": [SNS_SOURCE], "producer_event_rules": [RULE_SOURCE], "vpc": VPC,
    "secrets": {"document_api_key": "prod/documents/api-key"},
}  # fmt: skip


@pytest.fixture(scope="module")
def full() -> Template:
    return Template.from_stack(synth("full", **FULL)[1])


@pytest.fixture(scope="module")
def prod() -> Template:
    return Template.from_stack(synth("prod", **STAGES["prod"])[1])


def resources(template: Template, kind: str) -> list[Any]:
    return list(template.find_resources(kind).values())


def test_every_alarm_names_a_runbook_section_that_exists(template: Template):
    anchors = {re.sub(r"[^a-z0-9 -]", "", line[3:].strip().lower()).replace(" ", "-")
               for line in RUNBOOK.read_text().splitlines() if line.startswith("## ")}  # fmt: skip
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    assert len(alarms) == 8
    for alarm in alarms:
        [section] = re.findall(r"Runbook: docs/runbook\.md#([a-z0-9-]+)", alarm["Properties"]["AlarmDescription"])
        assert section in anchors, section


def test_duration_and_memory_alarms_fire_near_the_limits(template: Template):
    alarms = {a["Properties"]["AlarmDescription"].split(":")[0]: a["Properties"]
              for a in resources(template, "AWS::CloudWatch::Alarm")}  # fmt: skip
    [duration] = [a for a in alarms.values() if a.get("MetricName") == "Duration"]
    assert duration["Threshold"] == 30 * 1000 * 0.9
    [memory] = [a for a in alarms.values() if "MaxMemoryUsedMB" in json.dumps(a)]
    assert memory["Threshold"] == 256 * 0.9
    [metric_filter] = resources(template, "AWS::Logs::MetricFilter")
    assert metric_filter["Properties"]["FilterPattern"] == '{ $.type = "platform.report" }'
    [transformation] = metric_filter["Properties"]["MetricTransformations"]
    assert transformation["MetricValue"] == "$.record.metrics.maxMemoryUsedMB"
    assert transformation["MetricName"] == "MaxMemoryUsedMB"


def test_dashboard_fills_missing_counts_and_shows_mapping_dlq_memory_and_duration(template: Template):
    [dashboard] = resources(template, "AWS::CloudWatch::Dashboard")
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    assert "FILL(SEARCH(" in body and "FILL(SUM(SEARCH(" in body
    for name in ("PolledEventCount", "InvokedEventCount", "FailedInvokeEventCount", "NumberOfMessagesSent",
                 "MaxMemoryUsedMB", "Duration", "ConcurrentExecutions"):  # fmt: skip
        assert name in body, name
    assert "IF(processed + failed + quarantined > 0" in body


def test_a_stage_may_name_an_existing_alarm_topic(full: Template):
    assert resources(full, "AWS::SNS::Topic") == []
    for alarm in resources(full, "AWS::CloudWatch::Alarm"):
        assert alarm["Properties"]["AlarmActions"] == [TOPIC]


def test_provisioned_pollers_replace_maximum_concurrency(full: Template):
    [mapping] = resources(full, "AWS::Lambda::EventSourceMapping")
    assert mapping["Properties"]["ProvisionedPollerConfig"] == {"MinimumPollers": 2, "MaximumPollers": 20}
    assert "ScalingConfig" not in mapping["Properties"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_concurrency": 5, "provisioned_pollers": {"minimum": 2}}, "provisioned_pollers and max_concurrency are"),
        ({"provisioned_pollers": {"minimum": 20, "maximum": 10}}, r"minimum \(20\) must be <="),
        ({"provisioned_pollers": {"minimum": 1}}, "greater than or equal to 2"),
        ({"producer_principals": ["orders-api"]}, "is not an IAM role, user or account ARN"),
        ({"producer_sns_topics": ["arn:aws:sqs:eu-west-1:123456789012:q"]}, "is not an SNS topic ARN"),
        ({"producer_event_rules": [SNS_SOURCE]}, "is not an EventBridge rule ARN"),
        ({"alarm_topic_arn": TOPIC, "alarm_email": "a@example.com"}, "subscribe to that topic instead"),
        ({"vpc": {**VPC, "private_subnet_ids": VPC["private_subnet_ids"][:1]}}, "one private subnet and one route"),
    ],
)
def test_production_settings_fail_synth_with_what_to_change(settings, message):
    with pytest.raises(StackSettingsError, match=message):
        StackSettings.for_stage("bad", {"bad": settings})


def test_reserved_concurrency_is_optional_and_prod_reserves_its_own(template: Template, prod: Template):
    [dev_function] = resources(template, "AWS::Lambda::Function")
    assert "ReservedConcurrentExecutions" not in dev_function["Properties"]
    [prod_function] = resources(prod, "AWS::Lambda::Function")
    assert prod_function["Properties"]["ReservedConcurrentExecutions"] == 12


def test_aws_services_may_send_only_from_the_named_sources(full: Template):
    [policy] = [p for p in resources(full, "AWS::SQS::QueuePolicy") if "sns.amazonaws.com" in json.dumps(p)]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    by_service = {s["Principal"]["Service"]: s for s in statements if "Service" in s.get("Principal", {})}
    assert by_service["sns.amazonaws.com"]["Condition"] == {"ArnEquals": {"aws:SourceArn": [SNS_SOURCE]}}
    assert by_service["events.amazonaws.com"]["Condition"] == {"ArnEquals": {"aws:SourceArn": [RULE_SOURCE]}}
    for statement in by_service.values():
        assert statement["Action"] == "sqs:SendMessage"
        assert statement["Effect"] == "Allow"


def test_the_function_runs_in_the_private_subnets_with_https_out_and_the_endpoints_it_calls(full: Template):
    [function] = resources(full, "AWS::Lambda::Function")
    vpc_config = function["Properties"]["VpcConfig"]
    assert vpc_config["SubnetIds"] == VPC["private_subnet_ids"]
    [group_ref] = vpc_config["SecurityGroupIds"]
    groups = full.find_resources("AWS::EC2::SecurityGroup")
    function_group = groups[group_ref["Fn::GetAtt"][0]]["Properties"]
    assert function_group["VpcId"] == VPC["vpc_id"]
    assert [
        (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) for rule in function_group["SecurityGroupEgress"]
    ] == [("tcp", 443, 443)]
    assert "SecurityGroupIngress" not in function_group
    endpoints = resources(full, "AWS::EC2::VPCEndpoint")
    kinds = sorted(
        (e["Properties"].get("VpcEndpointType"), json.dumps(e["Properties"]["ServiceName"])) for e in endpoints
    )
    assert [kind for kind, _ in kinds] == ["Gateway", "Interface", "Interface"]
    assert any("dynamodb" in name for kind, name in kinds if kind == "Gateway")
    assert sorted(name.split(".")[-1].strip('"]}') for kind, name in kinds if kind == "Interface") == [
        "secretsmanager", "sqs"
    ]  # fmt: skip
    [gateway] = [e for e in endpoints if e["Properties"]["VpcEndpointType"] == "Gateway"]
    assert gateway["Properties"]["RouteTableIds"] == VPC["private_subnet_route_table_ids"]
    full.has_resource_properties("AWS::EC2::SecurityGroupIngress", {"IpProtocol": "tcp", "FromPort": 443})


def test_behind_a_nat_no_endpoint_is_made():
    template = Template.from_stack(synth("nat", vpc={**VPC, "egress": "nat"})[1])
    assert resources(template, "AWS::EC2::VPCEndpoint") == []
    [function] = resources(template, "AWS::Lambda::Function")
    assert function["Properties"]["VpcConfig"]["SubnetIds"] == VPC["private_subnet_ids"]


def test_the_function_may_read_the_named_secrets_alone(full: Template):
    [function] = resources(full, "AWS::Lambda::Function")
    variables = function["Properties"]["Environment"]["Variables"]
    assert json.loads(variables["SECRET_NAMES"]) == {"document_api_key": "prod/documents/api-key"}
    assert variables["SECRETS_MAX_AGE_SECONDS"] == "300"
    [policy] = resources(full, "AWS::IAM::Policy")
    reads = [s for s in policy["Properties"]["PolicyDocument"]["Statement"]
             if "secretsmanager:GetSecretValue" in json.dumps(s["Action"])]  # fmt: skip
    [read] = reads
    assert "secret:prod/documents/api-key-??????" in json.dumps(read["Resource"])


def test_stage_hygiene_tags_removal_and_protection(template: Template, prod: Template):
    _, dev_stack = synth()
    _, prod_stack = synth("prod", **STAGES["prod"])
    assert dev_stack.termination_protection is False
    assert prod_stack.termination_protection is True
    for stage, tpl in (("dev", template), ("prod", prod)):
        [function] = resources(tpl, "AWS::Lambda::Function")
        assert {"Key": "stage", "Value": stage} in function["Properties"]["Tags"]
        assert {"Key": "service", "Value": "sqs-consumer"} in function["Properties"]["Tags"]
    dev_policies = {r["DeletionPolicy"] for kind in ("AWS::SQS::Queue", "AWS::DynamoDB::GlobalTable",
                    "AWS::Logs::LogGroup") for r in template.find_resources(kind).values()}  # fmt: skip
    prod_policies = {r["DeletionPolicy"] for kind in ("AWS::SQS::Queue", "AWS::DynamoDB::GlobalTable",
                     "AWS::Logs::LogGroup") for r in prod.find_resources(kind).values()}  # fmt: skip
    assert dev_policies == {"Delete"}
    assert prod_policies == {"Retain"}
    prod.has_resource_properties("AWS::DynamoDB::GlobalTable", {"Replicas": [Match.object_like(
        {"DeletionProtectionEnabled": True})]})  # fmt: skip
    template.has_resource_properties("AWS::DynamoDB::GlobalTable", {"Replicas": [Match.object_like(
        {"DeletionProtectionEnabled": False})]})  # fmt: skip
