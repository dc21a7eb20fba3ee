"""The payload bucket (offloaded events) and the SNS subscriptions the stack can make."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import App, Environment, Stack
from aws_cdk.assertions import Match, Template

from infra.app import build_app
from infra.settings import StackSettings, StackSettingsError
from infra.sqs_consumer import SqsConsumer, SqsConsumerProps
from infra.stack import ConsumerStack, stack_name
from tests.infra.conftest import synth
from tests.infra.test_production import FULL, PRODUCER, SNS_SOURCE, STAGES, VPC

DAY = 86_400
OTHER_PRODUCER = "arn:aws:iam::444455556666:role/invoices-api"
FIFO_TOPIC = "arn:aws:sns:eu-west-1:123456789012:orders.fifo"


def template_of(stage: str = "dev", **settings: Any) -> Template:
    return Template.from_stack(synth(stage, **settings)[1])


def bucket_of(template: Template) -> tuple[str, Any]:
    [(logical_id, bucket)] = template.find_resources("AWS::S3::Bucket").items()
    return logical_id, bucket


def objects_arn(bucket_id: str) -> dict[str, Any]:
    return {"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, "/*"]]}


def bucket_statements(template: Template) -> list[dict[str, Any]]:
    [policy] = template.find_resources("AWS::S3::BucketPolicy").values()
    return list(policy["Properties"]["PolicyDocument"]["Statement"])


def expiration(template: Template) -> int:
    [rule] = bucket_of(template)[1]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled" and rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    return int(rule["ExpirationInDays"])


def test_the_bucket_is_encrypted_private_tls_only_and_owns_what_producers_write(template: Template):
    bucket_id, bucket = bucket_of(template)
    props = bucket["Properties"]
    [encryption] = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True
    }  # fmt: skip
    # ACLs off: an object another account's producer writes belongs to the bucket's account.
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    [deny] = [s for s in bucket_statements(template) if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} and deny["Action"] == "s3:*"
    assert objects_arn(bucket_id) in deny["Resource"]


def test_payloads_expire_after_two_queue_retentions_and_the_dlqs_plus_a_day(template: Template):
    # Default: 4 days in the queue, 14 in the DLQ after a quarantine, 4 more after a redrive, and a day.
    assert expiration(template) == 4 + 14 + 4 + 1
    short = template_of("short", retention_period_seconds=3_600, dlq_retention_period_seconds=2 * DAY)
    assert expiration(short) == 3 + 1  # 2 h + 2 days, rounded up to whole days


def test_consumers_of_a_stage_share_one_bucket_that_expires_after_the_longest_retention():
    template = template_of("two", consumers={"audit": {"retention_period_seconds": 7 * DAY}})
    bucket_id, _ = bucket_of(template)
    assert expiration(template) == 7 + 14 + 7 + 1
    functions = template.find_resources("AWS::Lambda::Function").values()
    assert [f["Properties"]["Environment"]["Variables"]["PAYLOAD_BUCKET"] for f in functions] == [
        {"Ref": bucket_id}
    ] * 2
    policies = [
        p["Properties"]["PolicyDocument"]["Statement"] for p in template.find_resources("AWS::IAM::Policy").values()
    ]
    readers = [p for p in policies if objects_arn(bucket_id) in [s["Resource"] for s in p]]
    assert len(readers) == 2


def test_the_function_may_get_objects_and_list_the_bucket_and_nothing_else(template: Template):
    # ListBucket on the bucket alone: without it S3 answers a missing key with AccessDenied.
    bucket_id, _ = bucket_of(template)
    statements = [s for p in template.find_resources("AWS::IAM::Policy").values()
                  for s in p["Properties"]["PolicyDocument"]["Statement"]]  # fmt: skip
    on_bucket = [s for s in statements if bucket_id in json.dumps(s)]
    assert on_bucket == [
        {"Action": "s3:GetObject", "Effect": "Allow", "Resource": objects_arn(bucket_id)},
        {"Action": "s3:ListBucket", "Effect": "Allow", "Resource": {"Fn::GetAtt": [bucket_id, "Arn"]}},
    ]
    [function] = template.find_resources("AWS::Lambda::Function").values()
    assert function["Properties"]["Environment"]["Variables"]["PAYLOAD_BUCKET"] == {"Ref": bucket_id}
    assert template.find_outputs("PayloadBucketName")["PayloadBucketName"]["Value"] == {"Ref": bucket_id}


def test_producers_of_every_consumer_may_put_objects_and_no_one_else():
    template = template_of(
        "producers", producer_principals=[PRODUCER], consumers={"invoices": {"producer_principals": [OTHER_PRODUCER]}}
    )
    bucket_id, _ = bucket_of(template)
    [allow] = [s for s in bucket_statements(template) if s["Effect"] == "Allow"]
    assert allow["Action"] == "s3:PutObject" and allow["Resource"] == objects_arn(bucket_id)
    assert sorted(allow["Principal"]["AWS"]) == sorted([PRODUCER, OTHER_PRODUCER])
    plain = template_of("plain")
    assert [s for s in bucket_statements(plain) if s["Effect"] == "Allow"] == []


def test_prod_retains_the_bucket_dev_deletes_it_without_a_custom_resource(template: Template):
    prod = template_of("prod", **STAGES["prod"])
    assert bucket_of(prod)[1]["DeletionPolicy"] == "Retain"
    assert bucket_of(template)[1]["DeletionPolicy"] == "Delete"
    for tpl in (prod, template):
        assert tpl.find_resources("Custom::S3AutoDeleteObjects") == {}
        assert len(tpl.find_resources("AWS::Lambda::Function")) == 1


def test_a_consumer_in_any_stack_makes_its_own_bucket():
    stack = Stack(App(), "Elsewhere")
    consumer = SqsConsumer(stack, "Payments", SqsConsumerProps(settings=StackSettings(), name="payments"))
    template = Template.from_stack(stack)
    bucket_id, _ = bucket_of(template)
    assert consumer.payload_bucket.node.path == "Elsewhere/Payments/PayloadBucket/Bucket"
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {"Environment": {"Variables": Match.object_like({"PAYLOAD_BUCKET": {"Ref": bucket_id}})}},
    )


# --- SNS subscriptions ---------------------------------------------------------------------------


def subscriptions(template: Template) -> list[Any]:
    return list(template.find_resources("AWS::SNS::Subscription", {"Properties": {"Protocol": "sqs"}}).values())


def test_listed_topics_are_not_subscribed_unless_asked(template: Template):
    assert subscriptions(template_of("listed", producer_sns_topics=[SNS_SOURCE])) == []


@pytest.mark.parametrize("raw", [False, True])
def test_the_stack_subscribes_the_queue_with_the_stages_raw_delivery(raw):
    settings = {"producer_sns_topics": [SNS_SOURCE], "subscribe_sns_topics": True, "sns_raw_message_delivery": raw}
    template = template_of("subscribed", **settings)
    queues = template.find_resources("AWS::SQS::Queue")
    [queue_id] = [lid for lid, q in queues.items() if "RedrivePolicy" in q["Properties"]]
    [subscription] = subscriptions(template)
    props = subscription["Properties"]
    assert props["TopicArn"] == SNS_SOURCE and props["Region"] == "eu-west-1"
    assert props["Endpoint"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    assert props.get("RawMessageDelivery", False) is raw
    [policy_id] = [lid for lid, p in template.find_resources("AWS::SQS::QueuePolicy").items()
                   if "sns.amazonaws.com" in json.dumps(p)]  # fmt: skip
    assert policy_id in subscription["DependsOn"]


def test_a_subscribed_topic_must_be_in_the_stacks_account():
    # Environment-agnostic: a template rule makes CloudFormation refuse another account.
    template = template_of("subscribed", producer_sns_topics=[SNS_SOURCE], subscribe_sns_topics=True)
    [rule] = [r for name, r in template.to_json()["Rules"].items() if "SubscribedTopicsInTheStacksAccount" in name]
    [assertion] = rule["Assertions"]
    assert assertion["Assert"] == {"Fn::Equals": [{"Ref": "AWS::AccountId"}, "123456789012"]}
    assert "topic's owner subscribe the queue" in assertion["AssertDescription"]
    # A known account: refused at synth.
    stages = {"acct": {"producer_sns_topics": [SNS_SOURCE], "subscribe_sns_topics": True}}
    for account, fails in (("999999999999", True), ("123456789012", False)):
        app = App(context={"stage": "acct", "stages": stages})
        settings = StackSettings.for_stage("acct", stages)

        def build(app: App = app, settings: StackSettings = settings, account: str = account) -> ConsumerStack:
            return ConsumerStack(app, stack_name("acct"), stage="acct", settings=settings,
                                 env=Environment(account=account, region="eu-west-1"))  # fmt: skip

        if fails:
            with pytest.raises(StackSettingsError, match=r"is not in the stack's account 999999999999: the topic's"):
                build()
        else:
            rules = Template.from_stack(build()).to_json().get("Rules", {})
            assert not [name for name in rules if "SubscribedTopics" in name]


def test_the_full_stage_subscribes_and_still_synthesizes_with_cdk_nag():
    app = App(context={"stage": "full", "stages": {"full": FULL}})
    build_app(app)
    app.synth()  # raises on a cdk-nag finding


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"sns_raw_message_delivery": True, "producer_sns_topics": [SNS_SOURCE]},
         r"sns_raw_message_delivery is an attribute of the subscription the stack makes: set subscribe_sns_topics"),
        ({"subscribe_sns_topics": True}, r"subscribe_sns_topics subscribes the queue to producer_sns_topics: list"),
        ({"fifo": True, "producer_sns_topics": [SNS_SOURCE, FIFO_TOPIC]},
         r"producer_sns_topics arn:aws:sns:eu-west-1:123456789012:orders are standard topics: SNS delivers to a FIFO"),
        ({"fifo": True, "producer_event_rules": ["arn:aws:events:eu-west-1:123456789012:rule/orders"]},
         r"producer_event_rules on a FIFO queue need content_based_deduplication = true"),
        ({"vpc": {k: v for k, v in VPC.items() if k != "s3_prefix_list_id"}},
         r"vpc.s3_prefix_list_id is needed with egress endpoints: .*Values=com.amazonaws.eu-west-1.s3\)"),
        ({"vpc": {**VPC, "s3_prefix_list_id": VPC["dynamodb_prefix_list_id"]}},
         r"vpc.s3_prefix_list_id and vpc.dynamodb_prefix_list_id are both pl-6fa54006"),
    ],
)  # fmt: skip
def test_a_wrong_sns_or_s3_setting_fails_synth_saying_what_to_change(values, message):
    with pytest.raises(StackSettingsError, match=message):
        StackSettings.for_stage("bad", {"bad": values})


def test_a_fifo_queue_takes_a_fifo_topic_and_nat_needs_no_s3_prefix_list():
    StackSettings.for_stage("ok", {"ok": {"fifo": True, "producer_sns_topics": [FIFO_TOPIC]}})
    rule = "arn:aws:events:eu-west-1:123456789012:rule/orders"
    StackSettings.for_stage("ok", {"ok": {"fifo": True, "content_based_deduplication": True,
                                          "producer_event_rules": [rule]}})  # fmt: skip
    vpc = {k: v for k, v in VPC.items() if k != "s3_prefix_list_id"}
    StackSettings.for_stage("ok", {"ok": {"vpc": {**vpc, "egress": "nat"}}})
