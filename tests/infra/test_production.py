"""Production readiness of the synthesized stack: alarms that reach someone, concurrency that fits
every account, producers, VPC, secrets and stage hygiene (one synth per configuration)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Annotations, Match, Template

from infra.settings import StackSettings, StackSettingsError
from sqs_consumer.routes import REGISTRY
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
    "dynamodb_prefix_list_id": "pl-6fa54006",
    "s3_prefix_list_id": "pl-6da54004",
}
SECRETS_KEY = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
PRODUCER = "arn:aws:iam::111122223333:role/orders-api"
# Every option on at once: the stage the deploy rehearsal (test_deploy_rehearsal.py) and the scanners check.
FULL: dict[str, Any] = {
    "alarm_topic_arn": TOPIC, "provisioned_pollers": {"minimum": 2, "maximum": 20}, "reserved_concurrency": 200,
    "producer_principals": [PRODUCER], "producer_sns_topics": [SNS_SOURCE], "producer_event_rules": [RULE_SOURCE],
    "subscribe_sns_topics": True,
    "vpc": VPC, "secrets": {"document_api_key": "prod/documents/api-key"}, "secrets_kms_key_arn": SECRETS_KEY,
    "snap_start": True, "retain_data": True, "termination_protection": True,
}  # fmt: skip


@pytest.fixture(scope="module")
def full() -> Template:
    return Template.from_stack(synth("full", **FULL)[1])


@pytest.fixture(scope="module")
def prod() -> Template:
    return Template.from_stack(synth("prod", **STAGES["prod"])[1])


def default_policies(template: Template) -> dict[str, Any]:
    """The function role's default policy (the breakers' policy and their scheduler role's are apart)."""
    return {lid: p for lid, p in template.find_resources("AWS::IAM::Policy").items()
            if "DefaultPolicy" in lid and "ProbeRole" not in lid}  # fmt: skip


def resources(template: Template, kind: str) -> list[Any]:
    return list(template.find_resources(kind).values())


def test_every_alarm_names_a_runbook_section_that_exists(template: Template):
    anchors = {re.sub(r"[^a-z0-9 -]", "", line[3:].strip().lower()).replace(" ", "-")
               for line in RUNBOOK.read_text().splitlines() if line.startswith("## ")}  # fmt: skip
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    service_levels = sum((route.slo_p99_ms is not None) + (route.slo_max_age_s is not None)
                         for route in REGISTRY.routes.values())  # fmt: skip
    assert len(alarms) == 10 + service_levels  # with the breakers' own
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
        (
            {"vpc": {**VPC, "availability_zones": ["eu-west-1a", "eu-west-1a"]}},
            r"vpc.availability_zones lists eu-west-1a more than once: one subnet per zone",
        ),
        (
            {"vpc": {**VPC, "availability_zones": ["eu-west-1a", "us-east-1b"]}},
            r"vpc.availability_zones span regions eu-west-1, us-east-1",
        ),
        (
            {"vpc": {**VPC, "private_subnet_ids": [VPC["private_subnet_ids"][0]] * 2}},
            r"vpc.private_subnet_ids lists subnet-0123456789abcdef0 more than once",
        ),
        ({"vpc": {**VPC, "egress": "existing_endpoints"}}, r"existing_endpoints needs vpc.endpoint_security_group_ids"),
        (
            {"vpc": {k: v for k, v in VPC.items() if k != "dynamodb_prefix_list_id"}},
            r"vpc.dynamodb_prefix_list_id is needed .*com.amazonaws.eu-west-1.dynamodb",
        ),
        (
            {"vpc": VPC, "alarm_topic_arn": "arn:aws:sns:us-east-1:123456789012:alarms"},
            r"alarm_topic_arn is in us-east-1 but the vpc is in eu-west-1",
        ),
        (
            {"provisioned_pollers": {"maximum": 20}, "reserved_concurrency": 199},
            r"reserved_concurrency \(199\) must be >= 10 x provisioned_pollers.maximum \(20\) = 200",
        ),
        ({"provisioned_pollers": {"maximum": 10_001}}, r"maximum: Input should be less than or equal to 10000"),
        (
            {"secrets_kms_key_arn": SECRETS_KEY},
            "secrets_kms_key_arn is the key of the stage's secrets: it needs secrets",
        ),
        ({"termination_protection": True}, r"a production stage \(termination_protection\) must send its alarms"),
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


def egress_rules(template: Template, group_id: str) -> list[tuple[str, int, int, str]]:
    """The security group's egress rules: protocol, ports and destination (CIDR, group or prefix list)."""
    group = template.find_resources("AWS::EC2::SecurityGroup")[group_id]["Properties"]
    rules = list(group.get("SecurityGroupEgress", []))
    rules += [r["Properties"] for r in resources(template, "AWS::EC2::SecurityGroupEgress")
              if r["Properties"]["GroupId"] == {"Fn::GetAtt": [group_id, "GroupId"]}]  # fmt: skip
    destinations = ("CidrIp", "DestinationSecurityGroupId", "DestinationPrefixListId")
    return [
        (
            rule["IpProtocol"],
            rule["FromPort"],
            rule["ToPort"],
            json.dumps(next(rule[k] for k in destinations if k in rule)),
        )
        for rule in rules
    ]


def function_group_id(template: Template) -> str:
    [function] = resources(template, "AWS::Lambda::Function")
    [group_ref] = function["Properties"]["VpcConfig"]["SecurityGroupIds"]
    return str(group_ref["Fn::GetAtt"][0])


def test_the_function_runs_in_the_private_subnets_with_https_out_and_the_endpoints_it_calls(full: Template):
    [function] = resources(full, "AWS::Lambda::Function")
    vpc_config = function["Properties"]["VpcConfig"]
    assert vpc_config["SubnetIds"] == VPC["private_subnet_ids"]
    groups = full.find_resources("AWS::EC2::SecurityGroup")
    function_group = groups[function_group_id(full)]["Properties"]
    assert function_group["VpcId"] == VPC["vpc_id"]
    assert "SecurityGroupIngress" not in function_group
    endpoints = resources(full, "AWS::EC2::VPCEndpoint")
    kinds = sorted(
        (e["Properties"].get("VpcEndpointType"), json.dumps(e["Properties"]["ServiceName"])) for e in endpoints
    )
    assert [kind for kind, _ in kinds] == ["Gateway", "Gateway", "Interface", "Interface"]
    assert sorted(name.split(".")[-1].strip('"]}') for kind, name in kinds if kind == "Gateway") == ["dynamodb", "s3"]
    assert sorted(name.split(".")[-1].strip('"]}') for kind, name in kinds if kind == "Interface") == [
        "secretsmanager", "sqs"
    ]  # fmt: skip
    for gateway in [e for e in endpoints if e["Properties"]["VpcEndpointType"] == "Gateway"]:
        assert gateway["Properties"]["RouteTableIds"] == VPC["private_subnet_route_table_ids"]
    full.has_resource_properties("AWS::EC2::SecurityGroupIngress", {"IpProtocol": "tcp", "FromPort": 443})


def test_in_endpoints_mode_https_goes_only_to_the_endpoints_and_the_dynamodb_and_s3_prefix_lists(full: Template):
    [(endpoint_group_id, _)] = [(lid, g) for lid, g in full.find_resources("AWS::EC2::SecurityGroup").items()
                                if lid != function_group_id(full)]  # fmt: skip
    rules = egress_rules(full, function_group_id(full))
    assert sorted(rules) == sorted([
        ("tcp", 443, 443, json.dumps({"Fn::GetAtt": [endpoint_group_id, "GroupId"]})),
        ("tcp", 443, 443, json.dumps(VPC["dynamodb_prefix_list_id"])),
        ("tcp", 443, 443, json.dumps(VPC["s3_prefix_list_id"])),
    ])  # fmt: skip
    assert "0.0.0.0/0" not in json.dumps(rules)


def test_behind_a_nat_no_endpoint_is_made_and_https_goes_anywhere():
    template = Template.from_stack(synth("nat", vpc={**VPC, "egress": "nat"})[1])
    assert resources(template, "AWS::EC2::VPCEndpoint") == []
    [function] = resources(template, "AWS::Lambda::Function")
    assert function["Properties"]["VpcConfig"]["SubnetIds"] == VPC["private_subnet_ids"]
    assert egress_rules(template, function_group_id(template)) == [("tcp", 443, 443, '"0.0.0.0/0"')]


EXISTING_GROUP = "sg-0aaaabbbbccccdddd"


def test_existing_endpoints_makes_none_and_lets_the_function_reach_them():
    # GIVEN a VPC whose endpoints another stage or team made
    vpc = {**VPC, "egress": "existing_endpoints", "endpoint_security_group_ids": [EXISTING_GROUP]}

    # WHEN the stage is synthesized
    template = Template.from_stack(synth("shared", vpc=vpc, secrets={"api": "shared/api"})[1])

    # THEN no endpoint (no private DNS, no route) is made, and HTTPS goes to theirs and the prefix lists only
    assert resources(template, "AWS::EC2::VPCEndpoint") == []
    assert sorted(egress_rules(template, function_group_id(template))) == sorted(
        [("tcp", 443, 443, json.dumps(EXISTING_GROUP)), ("tcp", 443, 443, json.dumps(VPC["dynamodb_prefix_list_id"])),
         ("tcp", 443, 443, json.dumps(VPC["s3_prefix_list_id"]))]
    )  # fmt: skip
    template.has_resource_properties("AWS::EC2::SecurityGroupIngress", {
        "GroupId": EXISTING_GROUP, "FromPort": 443, "ToPort": 443,
        "SourceSecurityGroupId": {"Fn::GetAtt": [function_group_id(template), "GroupId"]}})  # fmt: skip


def test_two_stages_making_endpoints_in_one_vpc_fail_synth_and_existing_endpoints_passes():
    dev, prod = {"vpc": VPC}, {"vpc": VPC, "alarm_email": "a@example.org"}
    with pytest.raises(
        StackSettingsError, match=r"stages 'dev' and 'prod' both make endpoints in vpc-0123456789abcdef0"
    ):
        StackSettings.for_stage("dev", {"dev": dev, "prod": prod})
    shared = {"vpc": {**VPC, "egress": "existing_endpoints", "endpoint_security_group_ids": [EXISTING_GROUP]}}
    StackSettings.for_stage("dev", {"dev": shared, "prod": prod})
    StackSettings.for_stage("prod", {"dev": shared, "prod": prod})


def _endpoint_policies(template: Template) -> dict[str, Any]:
    return {json.dumps(e["Properties"]["ServiceName"]).split(".")[-1].strip('"]}'): e["Properties"]["PolicyDocument"]
            for e in resources(template, "AWS::EC2::VPCEndpoint")}  # fmt: skip


ACCOUNT_ONLY = {"Statement": [{
    "Sid": "PrincipalsOfThisAccount", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "*", "Resource": "*",
    "Condition": {"StringEquals": {"aws:PrincipalAccount": {"Ref": "AWS::AccountId"}}},
}], "Version": "2012-10-17"}  # fmt: skip


def test_each_endpoint_the_stack_makes_allows_its_accounts_principals_and_names_no_stage_resource(full: Template):
    # The endpoints are the VPC's (private DNS, route tables): a policy naming this stage's queues, table,
    # bucket or secrets would deny every other stage and workload there. Another account's credentials are refused.
    policies = _endpoint_policies(full)
    assert set(policies) == {"sqs", "secretsmanager", "dynamodb", "s3"}
    for service, policy in policies.items():
        assert policy == ACCOUNT_ONLY, service


def test_a_second_stage_using_the_first_stages_endpoints_in_one_vpc_is_not_denied_its_calls():
    # GIVEN stage a making the VPC's endpoints and stage b, in the same VPC and account, using them
    shared = {**VPC, "egress": "existing_endpoints", "endpoint_security_group_ids": [EXISTING_GROUP]}
    stages = {"a": {"vpc": VPC, "secrets": {"key": "a/key"}}, "b": {"vpc": shared, "secrets": {"key": "b/key"}}}
    a = Template.from_stack(synth("a", **stages["a"])[1])
    b = Template.from_stack(synth("b", **stages["b"])[1])

    # WHEN stage b's function calls what its role allows (its queues, table, bucket and secret)
    called = {action.split(":")[0] for policy in resources(b, "AWS::IAM::Policy")
              for s in policy["Properties"]["PolicyDocument"]["Statement"]
              for action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}  # fmt: skip

    # THEN each call goes through an endpoint of stage a whose policy lets any principal of the account do anything
    assert resources(b, "AWS::EC2::VPCEndpoint") == []
    policies = _endpoint_policies(a)
    for service in called & {"sqs", "dynamodb", "s3", "secretsmanager"}:
        assert policies[service] == ACCOUNT_ONLY, service
    assert called >= {"sqs", "dynamodb", "s3", "secretsmanager"}


def test_a_function_in_a_vpc_holds_the_eni_actions_before_it_is_created(full: Template):
    [(policy_id, policy)] = default_policies(full).items()
    [eni] = [
        s for s in policy["Properties"]["PolicyDocument"]["Statement"] if "ec2:CreateNetworkInterface" in s["Action"]
    ]
    assert sorted(eni["Action"]) == sorted(["ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSubnets", "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses",
        "ec2:UnassignPrivateIpAddresses"])  # fmt: skip
    assert eni["Resource"] == "*"
    [function] = resources(full, "AWS::Lambda::Function")
    assert policy_id in function["DependsOn"]


def test_the_function_may_read_the_named_secrets_alone(full: Template):
    [function] = resources(full, "AWS::Lambda::Function")
    variables = function["Properties"]["Environment"]["Variables"]
    assert json.loads(variables["SECRET_NAMES"]) == {"document_api_key": "prod/documents/api-key"}
    assert variables["SECRETS_MAX_AGE_SECONDS"] == "300"
    [policy] = default_policies(full).values()
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


def test_the_prod_stage_must_send_its_alarms_somewhere():
    with pytest.raises(StackSettingsError, match=r"a production stage \(stage 'prod'\) must send its alarms somewhere"):
        StackSettings.for_stage("prod", {"prod": {}})
    assert StackSettings.for_stage("prod", {"prod": {"alarm_topic_arn": TOPIC}}).alarm_topic_arn == TOPIC
    assert STAGES["prod"].get("alarm_email") or STAGES["prod"].get("alarm_topic_arn")


def test_up_to_ten_thousand_pollers_and_a_reservation_of_ten_invokes_each():
    s = StackSettings.for_stage(
        "big", {"big": {"provisioned_pollers": {"maximum": 10_000}, "reserved_concurrency": 100_000}}
    )
    assert s.provisioned_pollers is not None and s.provisioned_pollers.max_invocations == 100_000


def test_the_stack_refuses_a_region_other_than_the_vpcs_and_the_alarm_topics(full: Template):
    rules = full.to_json()["Rules"]["DeployedInTheStagesRegion"]["Assertions"]
    asserted = [(rule["Assert"]["Fn::Equals"], rule["AssertDescription"]) for rule in rules]
    assert [equals for equals, _ in asserted] == [[{"Ref": "AWS::Region"}, "eu-west-1"]] * 2
    assert "deploy this stage to eu-west-1" in asserted[1][1] and "alarm_topic_arn" in asserted[1][1]


def test_secrets_are_read_with_get_secret_value_alone_and_decrypted_through_secrets_manager(full: Template):
    [policy] = default_policies(full).values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    actions = json.dumps([s["Action"] for s in statements])
    assert "secretsmanager:DescribeSecret" not in actions
    [decrypt] = [s for s in statements if s["Action"] == "kms:Decrypt"]
    assert decrypt["Resource"] == SECRETS_KEY
    assert decrypt["Condition"] == {"StringEquals": {"kms:ViaService": {"Fn::Join": [
        "", ["secretsmanager.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]}}}  # fmt: skip


def test_no_kms_statement_without_a_secrets_key(template: Template):
    [policy] = default_policies(template).values()
    assert "kms:" not in json.dumps(policy)


def test_the_dlq_accepts_redrives_from_its_source_queue_alone(template: Template):
    queues = template.find_resources("AWS::SQS::Queue")
    [source] = [q["Properties"] for q in queues.values() if "RedrivePolicy" in q["Properties"]]
    [dlq] = [q["Properties"] for q in queues.values() if "RedrivePolicy" not in q["Properties"]]
    assert source["QueueName"] == "SqsConsumer-dev-queue"
    assert dlq["RedriveAllowPolicy"]["redrivePermission"] == "byQueue"
    [arn] = dlq["RedriveAllowPolicy"]["sourceQueueArns"]
    assert arn["Fn::Join"][1][-1] == ":SqsConsumer-dev-queue" and ":sqs:" in json.dumps(arn)


def test_a_fifo_source_queue_is_named_with_its_suffix():
    template = Template.from_stack(synth("orders", fifo=True)[1])
    names = [q["Properties"].get("QueueName") for q in resources(template, "AWS::SQS::Queue")]
    assert "SqsConsumer-orders-queue.fifo" in names


def test_a_dlq_message_alarms_before_it_can_expire_and_the_backlog_alarm_keeps_its_state(template: Template):
    alarms = {
        a["Properties"]["AlarmDescription"]: a["Properties"] for a in resources(template, "AWS::CloudWatch::Alarm")
    }
    dlq = {"Fn::GetAtt": [next(lid for lid, q in template.find_resources("AWS::SQS::Queue").items()
                               if "RedrivePolicy" not in q["Properties"]), "QueueName"]}  # fmt: skip
    on_dlq = {
        a["MetricName"]: a for a in alarms.values() if a.get("Dimensions") == [{"Name": "QueueName", "Value": dlq}]
    }
    aging = on_dlq["ApproximateAgeOfOldestMessage"]
    assert aging["Threshold"] == 14 * 86_400 // 2
    assert aging["TreatMissingData"] == "ignore"
    assert on_dlq["ApproximateNumberOfMessagesVisible"]["TreatMissingData"] == "ignore"
    assert "#dlq-messages-aging" in next(d for d, a in alarms.items() if a is aging)


def test_the_log_group_name_is_an_output_and_the_runbook_uses_it(template: Template):
    [log_group] = template.find_resources("AWS::Logs::LogGroup")
    assert template.find_outputs("LogGroupName")["LogGroupName"]["Value"] == {"Ref": log_group}
    text = RUNBOOK.read_text()
    assert "/aws/lambda/" not in text  # the stack names its own log group
    assert "$LOG_GROUP" in text


def test_the_runbook_lists_the_mapping_uuid_the_next_command_needs():
    text = RUNBOOK.read_text()
    [query] = re.findall(r"list-event-source-mappings.*?--query '([^']+)'", text, flags=re.DOTALL)
    assert "uuid:UUID" in query
    assert "update-event-source-mapping --uuid" in text


def test_every_runbook_link_in_the_stack_names_a_section_that_exists():
    anchors = {re.sub(r"[^a-z0-9 -]", "", line[3:].strip().lower()).replace(" ", "-")
               for line in RUNBOOK.read_text().splitlines() if line.startswith("## ")}  # fmt: skip
    links = [(path.name, anchor) for path in sorted((ROOT / "infra").glob("*.py"))
             for anchor in re.findall(r"runbook\.md#([a-z0-9-]+)", path.read_text())]  # fmt: skip
    assert ("settings.py", "an-existing-alarm-topic") in links
    for name, anchor in links:
        assert anchor in anchors, (name, anchor)


def test_each_stage_draws_its_dashboard_from_its_own_namespace(template: Template, prod: Template):
    bodies = {}
    for stage, tpl in (("dev", template), ("prod", prod)):
        [dashboard] = resources(tpl, "AWS::CloudWatch::Dashboard")
        bodies[stage] = json.dumps(dashboard["Properties"]["DashboardBody"])
        [function] = resources(tpl, "AWS::Lambda::Function")
        namespace = function["Properties"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"]
        assert namespace == f"SqsConsumer/{stage}"
        assert f"{{{namespace},event_type,service}}" in bodies[stage]
    assert "SqsConsumer/prod," not in bodies["dev"]


def checkov_skips(template: Template) -> dict[str, str]:
    return {skip["id"]: skip["comment"] for resource in template.to_json()["Resources"].values()
            for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])}  # fmt: skip


def test_the_concurrency_skip_states_the_true_bound_in_each_mode(template: Template):
    assert "maximum concurrency (3) bounds the consumer" in checkov_skips(template)["CKV_AWS_115"]
    provisioned = Template.from_stack(synth("pollers", provisioned_pollers={"maximum": 30})[1])
    reason = checkov_skips(provisioned)["CKV_AWS_115"]
    assert "each of at most 30 pollers drives up to 10 concurrent invokes" in reason
    assert "bounded at 300 executions" in reason
    assert "maximum concurrency bounds" not in reason


def test_the_sse_skip_says_kms_data_keys_are_reused(template: Template):
    reason = checkov_skips(template)["CKV_AWS_27"]
    assert "KmsDataKeyReusePeriodSeconds" in reason and "per receive" not in reason


def test_an_alarm_email_at_a_reserved_domain_warns_at_synth():
    _, prod_stack = synth("prod", **STAGES["prod"])
    Annotations.from_stack(prod_stack).has_warning("*", Match.string_like_regexp("alarm_email oncall@example.com"))
    _, real = synth("real", alarm_email="oncall@ops.acme.io")
    assert Annotations.from_stack(real).find_warning("*", Match.string_like_regexp("alarm_email")) == []
