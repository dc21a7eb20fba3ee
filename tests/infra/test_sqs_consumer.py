"""SqsConsumer, the reusable construct: typed props, several consumers in one stack, each complete."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk.assertions import Template

from infra.network import VpcPlacementConstruct
from infra.settings import StackSettings, StackSettingsError
from infra.sqs_consumer import SqsConsumer, SqsConsumerProps
from planning.cost import ALARMS
from tests.infra.conftest import synth
from tests.infra.test_production import VPC

# A standard queue for most work and a FIFO queue for ordered work, in one stack.
TWO_CONSUMERS: dict[str, Any] = {
    "alarm_email": "oncall@example.org",
    "consumers": {"orders": {"fifo": True, "content_based_deduplication": True, "max_concurrency": 5}},
}


@pytest.fixture(scope="module")
def two() -> Template:
    return Template.from_stack(synth("two", **TWO_CONSUMERS)[1])


def by_type(template: Template, kind: str) -> dict[str, Any]:
    return {lid: r["Properties"] for lid, r in template.find_resources(kind).items()}


def test_each_consumer_has_its_own_queue_dlq_function_mapping_and_table(two: Template):
    queues = by_type(two, "AWS::SQS::Queue")
    sources = {q["QueueName"]: q for q in queues.values() if "QueueName" in q}
    assert set(sources) == {"SqsConsumer-two-queue", "SqsConsumer-two-orders.fifo"}
    fifo = sources["SqsConsumer-two-orders.fifo"]
    dlq = queues[fifo["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]]
    assert fifo["FifoQueue"] is True and dlq["FifoQueue"] is True
    assert json.dumps(dlq["RedriveAllowPolicy"]).endswith(':SqsConsumer-two-orders.fifo"]]}]}')
    functions = by_type(two, "AWS::Lambda::Function")
    # The first consumer keeps the function's logical id that `sam local invoke` names.
    assert set(functions) == {"ConsumerFunction1B019A9B", "ConsumerOrdersFunction4E367832"}
    services = {f["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] for f in functions.values()}
    assert services == {"sqs-consumer", "sqs-consumer-orders"}
    tables = set(by_type(two, "AWS::DynamoDB::GlobalTable"))
    assert {f["Environment"]["Variables"]["IDEMPOTENCY_TABLE"]["Ref"] for f in functions.values()} == tables
    assert len(tables) == 2
    mappings = by_type(two, "AWS::Lambda::EventSourceMapping")
    read = {m["EventSourceArn"]["Fn::GetAtt"][0]: m for m in mappings.values()}
    assert {queues[q].get("QueueName") for q in read} == set(sources)
    assert sorted(m["ScalingConfig"]["MaximumConcurrency"] for m in mappings.values()) == [3, 5]


def test_each_role_reaches_its_own_consumers_resources_only(two: Template):
    functions = by_type(two, "AWS::Lambda::Function")
    policies = by_type(two, "AWS::IAM::Policy")
    for function in functions.values():
        role = function["Role"]["Fn::GetAtt"][0]
        # Its default policy and its breakers' policy, both on its role alone
        granted = {json.dumps(s["Resource"]) for p in policies.values() if p["Roles"] == [{"Ref": role}]
                   for s in p["PolicyDocument"]["Statement"]}  # fmt: skip
        env = function["Environment"]["Variables"]
        assert json.dumps({"Fn::GetAtt": [env["DLQ_URL"]["Ref"], "Arn"]}) in granted
        assert json.dumps({"Fn::GetAtt": [env["IDEMPOTENCY_TABLE"]["Ref"], "Arn"]}) in granted
        others = [f for f in functions.values() if f is not function]
        for other in others:
            assert (
                json.dumps({"Fn::GetAtt": [other["Environment"]["Variables"]["DLQ_URL"]["Ref"], "Arn"]}) not in granted
            )


def test_every_consumer_has_its_alarms_and_dashboard_on_the_one_topic(two: Template):
    [topic] = two.find_resources("AWS::SNS::Topic")
    alarms = by_type(two, "AWS::CloudWatch::Alarm")
    assert len(alarms) == 2 * ALARMS
    assert {json.dumps(a["AlarmActions"]) for a in alarms.values()} == {json.dumps([{"Ref": topic}])}
    dashboards = [json.dumps(d["DashboardBody"]) for d in by_type(two, "AWS::CloudWatch::Dashboard").values()]
    assert len(dashboards) == 2
    assert sum('service=\\\\\\"sqs-consumer-orders\\\\\\"' in body for body in dashboards) == 1
    filters = {
        f["MetricTransformations"][0]["MetricNamespace"] for f in by_type(two, "AWS::Logs::MetricFilter").values()
    }
    assert filters == {"SqsConsumer/two/sqs-consumer", "SqsConsumer/two/sqs-consumer-orders"}


def test_each_consumer_has_its_outputs(two: Template):
    outputs = set(two.find_outputs("*"))
    for prefix in ("", "Orders"):
        names = ("QueueUrl", "DeadLetterQueueUrl", "DeadLetterQueueArn", "FunctionName", "LogGroupName")
        assert {f"{prefix}{name}" for name in names} <= outputs


def test_consumers_in_a_vpc_share_one_set_of_endpoints_that_allow_the_accounts_principals():
    template = Template.from_stack(synth("vpc2", vpc=VPC, consumers={"orders": {"fifo": True}})[1])
    endpoints = by_type(template, "AWS::EC2::VPCEndpoint")
    assert len(endpoints) == 3  # SQS, DynamoDB and S3, once
    [sqs] = [e for e in endpoints.values() if json.dumps(e["ServiceName"]).endswith('.sqs"]]}')]
    # Each consumer's queues are reached through it: it names none, and allows the account's principals.
    [statement] = sqs["PolicyDocument"]["Statement"]
    assert (statement["Action"], statement["Resource"]) == ("*", "*")
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalAccount": {"Ref": "AWS::AccountId"}}}
    assert len(template.find_resources("AWS::EC2::SecurityGroup")) == 2


@pytest.mark.parametrize(
    ("consumers", "message"),
    [
        ({"orders": {"vpc": VPC}}, r"consumer 'orders' of stage 'bad': vpc apply to the whole stage"),
        ({"orders": {"fifo": True, "batch_size": 11}}, r"consumer 'orders' of stage 'bad': .*batch_size \(11\)"),
        ({"orders": {"service_name": "sqs-consumer"}}, r"service_name sqs-consumer is used by more than one consumer"),
        ({"Orders": {}}, r"consumers.Orders.\[key\]: String should match pattern"),
    ],
)
def test_a_bad_consumer_fails_synth_naming_it(consumers, message):
    with pytest.raises(StackSettingsError, match=message):
        StackSettings.consumers_for_stage("bad", {"bad": {"consumers": consumers}})


def test_the_construct_works_in_any_stack_and_exposes_what_a_caller_needs():
    # GIVEN a stack of the caller's own, not ConsumerStack
    stack = Stack(App(), "Elsewhere")

    # WHEN it adds a consumer with typed props
    consumer = SqsConsumer(
        stack, "Payments", SqsConsumerProps(settings=StackSettings(snap_start=True), name="payments")
    )

    # THEN the caller reaches every part by name
    template = Template.from_stack(stack)
    assert consumer.queue.node.path == "Elsewhere/Payments/Queues/Queue"
    assert consumer.alias is not consumer.function  # SnapStart: the mapping invokes the live alias
    assert consumer.table is not None and set(consumer.alarms) >= {"DeadLetterQueueMessagesAging", "FunctionErrors"}
    template.has_resource_properties("AWS::SQS::Queue", {"QueueName": "Elsewhere-payments"})
    template.has_resource_properties("AWS::Lambda::Alias", {"Name": "live"})


def test_props_refuse_a_vpc_without_the_stacks_network_and_the_reverse():
    settings = StackSettings.for_stage("x", {"x": {"vpc": VPC}})
    with pytest.raises(StackSettingsError, match="pass the stack's VpcPlacementConstruct as network"):
        SqsConsumerProps(settings=settings)
    stack = Stack(App(), "Net")
    network = VpcPlacementConstruct(stack, "Network", settings.vpc, secrets=False, dynamodb=True)  # type: ignore[arg-type]
    with pytest.raises(StackSettingsError, match=r"exactly when settings\.vpc is set"):
        SqsConsumerProps(settings=StackSettings(), network=network)


def test_two_consumers_that_would_share_a_queue_name_fail_synth_naming_both():
    # GIVEN a stack with a consumer of the default name
    stack = Stack(App(), "Shared")
    SqsConsumer(stack, "First", SqsConsumerProps(settings=StackSettings()))

    # WHEN a second consumer of the same name is added, THEN it is refused before anything is deployed
    with pytest.raises(
        StackSettingsError, match=r"Shared/First and Shared/Second would both make the queue 'Shared-queue'"
    ):
        SqsConsumer(stack, "Second", SqsConsumerProps(settings=StackSettings()))


def test_runtime_and_architecture_are_props_and_the_asset_is_built_for_them(tmp_path):
    from aws_cdk import aws_lambda as lambda_

    from infra.consumer_function import target_of
    from infra.packaging import Target

    # GIVEN a team's own code for an x86_64 function
    (tmp_path / "app.py").write_text("def handler(event, context):\n    return {}\n")
    stack = Stack(App(), "Intel")
    code = lambda_.Code.from_asset(str(tmp_path))
    props = SqsConsumerProps(settings=StackSettings(), runtime=lambda_.Runtime.PYTHON_3_13,
                             architecture=lambda_.Architecture.X86_64, code=code)  # fmt: skip

    # WHEN
    SqsConsumer(stack, "Consumer", props)

    # THEN the function is made as asked, and an asset would be built for that platform
    Template.from_stack(stack).has_resource_properties(
        "AWS::Lambda::Function", {"Runtime": "python3.13", "Architectures": ["x86_64"]}
    )
    assert target_of(lambda_.Runtime.PYTHON_3_13, lambda_.Architecture.X86_64) == Target("3.13", "x86_64")
    with pytest.raises(StackSettingsError, match=r"runtime nodejs22\.x: the consumer's asset is a Python package"):
        target_of(lambda_.Runtime.NODEJS_22_X, lambda_.Architecture.ARM_64)
