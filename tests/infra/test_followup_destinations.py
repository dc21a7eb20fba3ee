"""Follow-up destinations in the stack: declared per consumer, their URLs in the function's settings, and
sqs:SendMessage on those queues only; a wrong declaration fails the synth saying what to change."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Match, Template

from infra.followups import Destination, queue_destination
from infra.settings import StackSettings, StackSettingsError
from infra.sqs_consumer import SqsConsumer, SqsConsumerProps
from local.pipeline import resolve_environment
from local.sqs_server import Queue
from local.template import load_plan
from sqs_consumer.settings import ConsumerSettings
from tests.infra.conftest import synth
from tests.infra.test_production import VPC

BILLING_ARN = "arn:aws:sqs:eu-west-1:123456789012:billing"
LEDGER_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/ledger.fifo"
STAGE: dict[str, Any] = {
    "followup_destinations": {"billing": BILLING_ARN, "ledger": LEDGER_URL, "next": "orders"},
    "consumers": {"orders": {"fifo": True, "content_based_deduplication": True}},
}
OLD_URL = "https://eu-west-1.queue.amazonaws.com/123456789012/old"
CN_ARN = "arn:aws-cn:sqs:cn-north-1:123456789012:q"
FOLLOWUP_QUEUES = ConsumerSettings.env_name("followup_queues")


@pytest.fixture(scope="module")
def stack() -> Stack:
    return synth("flow", **STAGE)[1]


@pytest.fixture(scope="module")
def template(stack: Stack) -> Template:
    return Template.from_stack(stack)


def functions(template: Template) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource["Properties"]
        for logical_id, resource in template.find_resources("AWS::Lambda::Function").items()
    }


def orders_queue(template: Template) -> str:
    [queue] = [
        logical_id
        for logical_id, resource in template.find_resources("AWS::SQS::Queue").items()
        if logical_id.startswith("ConsumerOrdersQueuesQueue")
    ]
    return queue


def test_the_function_may_send_to_its_declared_destinations_only(template: Template):
    # THEN the sending consumer's role holds one statement: SendMessage on the three queues
    template.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        {
                            "Action": "sqs:SendMessage",
                            "Effect": "Allow",
                            "Resource": [
                                {"Fn::GetAtt": [orders_queue(template), "Arn"]},
                                BILLING_ARN,
                                "arn:aws:sqs:eu-west-1:123456789012:ledger.fifo",
                            ],
                        }
                    ]
                )
            }
        },
    )


def test_no_send_to_a_destination_reaches_the_consumer_that_did_not_declare_it(template: Template):
    # The further consumer inherits nothing: its policies send only to its own queues (its DLQ, and its
    # own queue for the breakers' re-sends).
    policies = template.find_resources("AWS::IAM::Policy")
    orders_policies = [p for logical_id, p in policies.items() if logical_id.startswith("ConsumerOrders")]
    sends = [
        s["Resource"]
        for policy in orders_policies
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if "sqs:SendMessage" in json.dumps(s["Action"])
    ]
    assert sends
    assert BILLING_ARN not in json.dumps(sends)
    for resource in sends:
        [logical_id] = re.findall(r'"Fn::GetAtt": \["([A-Za-z0-9]+)"', json.dumps(resource))
        assert logical_id.startswith("ConsumerOrders"), resource


def test_the_function_reads_each_destinations_url_by_name(template: Template, stack: Stack):
    main = [props for logical_id, props in functions(template).items() if not logical_id.startswith("ConsumerOrders")]
    [environment] = [props["Environment"]["Variables"] for props in main]
    urls = stack.resolve(environment[FOLLOWUP_QUEUES])
    text = json.dumps(urls)
    assert '\\"billing\\":\\"https://sqs.eu-west-1.amazonaws.com/123456789012/billing\\"' in text
    assert f'\\"ledger\\":\\"{LEDGER_URL}\\"' in text
    assert orders_queue(template) in text  # the consumer's queue URL, by reference
    orders = [props for logical_id, props in functions(template).items() if logical_id.startswith("ConsumerOrders")]
    assert FOLLOWUP_QUEUES not in orders[0]["Environment"]["Variables"]


def test_a_stage_without_destinations_sets_nothing_of_them():
    template = Template.from_stack(synth("plain")[1])
    [props] = functions(template).values()
    assert FOLLOWUP_QUEUES not in props["Environment"]["Variables"]


def test_in_a_vpc_the_sqs_endpoint_lets_the_sends_through():
    template = Template.from_stack(synth("vpcflow", vpc=VPC, followup_destinations={"billing": BILLING_ARN})[1])
    endpoints = template.find_resources("AWS::EC2::VPCEndpoint")
    [sqs] = [e for e in endpoints.values() if json.dumps(e["Properties"]["ServiceName"]).endswith('.sqs"]]}')]
    # The endpoint allows any call by a principal of the stack's account (network.py): the function's sends to
    # the destination, in whatever account it is, go through; the role alone says where it may send.
    [statement] = sqs["Properties"]["PolicyDocument"]["Statement"]
    assert (statement["Action"], statement["Resource"]) == ("*", "*")
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalAccount": {"Ref": "AWS::AccountId"}}}
    [policy] = [p for p in template.find_resources("AWS::IAM::Policy").values()
                if BILLING_ARN in json.dumps(p["Properties"]["PolicyDocument"])]  # fmt: skip
    assert policy


@pytest.mark.parametrize(
    ("stage", "message"),
    [
        ({"followup_destinations": {"Billing Queue": BILLING_ARN}}, r"'Billing Queue' is not a destination name"),
        ({"followup_destinations": {"billing": "http://example.com/q"}}, r"neither a queue ARN .* nor one of"),
        (
            {"followup_destinations": {"next": "shipping"}, "consumers": {"orders": {}}},
            r"'shipping' is not one of the stage's consumers \(declared: orders\)",
        ),
        (
            {"consumers": {"orders": {"followup_destinations": {"loop": "orders"}}}},
            r"consumer 'orders' .*cannot send follow-ups to its own queue",
        ),
        ({"idempotency": False, "followup_destinations": {"billing": BILLING_ARN}}, r"need idempotency = true"),
    ],
)
def test_a_wrong_destination_fails_synth_saying_what_to_change(stage: dict[str, Any], message: str):
    with pytest.raises(StackSettingsError, match=message):
        StackSettings.consumers_for_stage("bad", {"bad": stage})


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (BILLING_ARN, Destination("https://sqs.eu-west-1.amazonaws.com/123456789012/billing", BILLING_ARN)),
        (LEDGER_URL, Destination(LEDGER_URL, "arn:aws:sqs:eu-west-1:123456789012:ledger.fifo")),
        (OLD_URL, Destination(OLD_URL, "arn:aws:sqs:eu-west-1:123456789012:old")),
        (CN_ARN, Destination("https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q", CN_ARN)),
        ("orders", None),
    ],
)
def test_a_queue_is_known_by_its_arn_or_its_url(target: str, expected: Destination | None):
    assert queue_destination(target) == expected


def test_the_local_pipeline_resolves_the_destinations_to_its_own_queues(template: Template, tmp_path):
    # GIVEN the synthesized template, read as the local pipeline reads it
    path = tmp_path / "template.json"
    path.write_text(json.dumps(template.to_json()))
    plan = load_plan(path)
    queues = {logical_id: Queue(f"http://127.0.0.1:5000/q/{logical_id}", f"arn:{logical_id}") for logical_id in
              template.find_resources("AWS::SQS::Queue")}  # fmt: skip
    tables = {logical_id: "table" for logical_id in template.find_resources("AWS::DynamoDB::GlobalTable")}
    buckets = {logical_id: "bucket" for logical_id in template.find_resources("AWS::S3::Bucket")}

    # WHEN its environment is resolved
    environment = resolve_environment(plan, queues, tables, "http://127.0.0.1:5000", buckets)

    # THEN the function reads every destination's URL, the stage's consumer's its local queue
    urls = ConsumerSettings.from_env({**environment, "DLQ_URL": "http://127.0.0.1:5000/q/dlq"}).followup_queues
    assert urls == {
        "billing": "https://sqs.eu-west-1.amazonaws.com/123456789012/billing",
        "ledger": LEDGER_URL,
        "next": f"http://127.0.0.1:5000/q/{orders_queue(template)}",
    }


def test_a_construct_in_another_stack_is_given_its_destinations_or_the_synth_says_so():
    # GIVEN a consumer with destinations in a caller's own stack, never given them
    app = App()
    stack = Stack(app, "Elsewhere")
    settings = StackSettings(followup_destinations={"billing": BILLING_ARN, "next": "shipping"})
    forgotten = SqsConsumer(stack, "Payments", SqsConsumerProps(settings=settings, name="payments"))

    # THEN the synth fails, saying what to call
    with pytest.raises(RuntimeError, match=r"consumer 'payments' declares followup_destinations .*send_followups_to"):
        app.synth()

    # AND a call that lacks a named consumer's queue says which; one that has it wires the function
    with pytest.raises(StackSettingsError, match="name shipping: pass their queues"):
        forgotten.send_followups_to({})
    wired_stack = Stack(App(), "Wired")
    wired = SqsConsumer(wired_stack, "Payments", SqsConsumerProps(settings=settings, name="payments"))
    shipping = sqs.Queue(wired_stack, "Shipping")
    wired.send_followups_to({"shipping": shipping})
    template = Template.from_stack(wired_stack)
    shipping_arn = {"Fn::GetAtt": [wired_stack.get_logical_id(shipping.node.default_child), "Arn"]}  # type: ignore[arg-type]
    send = {"Action": "sqs:SendMessage", "Effect": "Allow", "Resource": [shipping_arn, BILLING_ARN]}
    template.has_resource_properties("AWS::IAM::Policy", {"PolicyDocument": {"Statement": Match.array_with([send])}})
