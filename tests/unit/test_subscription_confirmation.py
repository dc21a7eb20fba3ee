"""A SubscriptionConfirmation's reason names its SubscribeURL only when SNS could have written it.

Anyone allowed to send to the queue can send a body of that shape: the reason an operator follows
must not carry a link an attacker chose.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from sqs_consumer.models import HelloEvent
from sqs_consumer.pipeline import BatchConsumer
from sqs_consumer.registry import EventRegistry, Route
from sqs_consumer.testing import events as sqs
from sqs_consumer.testing.events import TOPIC_ARN, sns_notification
from sqs_consumer.testing.fakes import FakeContext, InMemoryDLQ
from tests.conftest import failed_ids

REGION = TOPIC_ARN.split(":")[3]
TOKEN = "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3beb71854e285d6ad"


def confirm_url(topic_arn: str = TOPIC_ARN, host: str = f"sns.{REGION}.amazonaws.com", scheme: str = "https") -> str:
    return f"{scheme}://{host}/?Action=ConfirmSubscription&TopicArn={topic_arn}&Token={TOKEN}"


def confirmation(url: Any, *, topic_arn: str = TOPIC_ARN, kind: str = "SubscriptionConfirmation") -> str:
    document = {**json.loads(sns_notification("{}")), "Type": kind, "TopicArn": topic_arn, "SubscribeURL": url}
    document["Message"] = f"You have chosen to subscribe to the topic {topic_arn}."
    return json.dumps(document)


def reason_for(body: str) -> str:
    quarantine = InMemoryDLQ()
    consumer = BatchConsumer(EventRegistry([Route(HelloEvent, lambda event, record: None)]), quarantine)
    response = consumer.handle(sqs.event(sqs.record(body)), FakeContext())
    assert failed_ids(response) == []
    [message] = quarantine.sent
    assert message.kind == "invalid_envelope"
    return message.reason


@pytest.mark.parametrize("kind", ["SubscriptionConfirmation", "UnsubscribeConfirmation"])
def test_a_genuine_confirmation_names_its_subscribe_url(kind):
    reason = reason_for(confirmation(confirm_url(), kind=kind))
    assert reason.startswith(f"an SNS {kind} for {TOPIC_ARN}, not a notification: it holds no event.")
    assert f"To confirm, open its SubscribeURL ({confirm_url()})" in reason


@pytest.mark.parametrize(
    ("topic_arn", "host"),
    [
        pytest.param("arn:aws-cn:sns:cn-north-1:123456789012:orders", "sns.cn-north-1.amazonaws.com.cn", id="china"),
        pytest.param("arn:aws-us-gov:sns:us-gov-west-1:123456789012:orders", "sns.us-gov-west-1.amazonaws.com",
                     id="govcloud"),
        pytest.param("arn:aws:sns:eu-west-1:123456789012:orders.fifo", "sns.eu-west-1.amazonaws.com", id="fifo-topic"),
    ],
)  # fmt: skip
def test_a_genuine_confirmation_in_another_partition_names_its_subscribe_url(topic_arn, host):
    url = confirm_url(topic_arn, host)
    assert f"open its SubscribeURL ({url})" in reason_for(confirmation(url, topic_arn=topic_arn))


FORGED = [
    pytest.param("https://attacker.example/?Action=ConfirmSubscription", id="another-host"),
    pytest.param(confirm_url(scheme="http"), id="plain-http"),
    pytest.param(confirm_url(host=f"sns.{REGION}.amazonaws.com.attacker.example"), id="lookalike-suffix"),
    pytest.param(confirm_url(host=f"sns.{REGION}.amazonaws.com@attacker.example"), id="userinfo-trick"),
    pytest.param(confirm_url(host=f"attacker.example@sns.{REGION}.amazonaws.com"), id="credentials-in-url"),
    pytest.param(confirm_url(host=f"sns.{REGION}.amazonaws.com:8443"), id="another-port"),
    pytest.param(confirm_url(host="sns.ap-southeast-2.amazonaws.com"), id="another-region"),
    pytest.param(confirm_url(host=f"sns.{REGION}.amazonaws.com.cn"), id="another-partition"),
    pytest.param(confirm_url(host=f"evil.sns.{REGION}.amazonaws.com"), id="subdomain"),
    pytest.param(confirm_url(topic_arn="arn:aws:sns:eu-west-1:999999999999:attacker"), id="another-topic"),
    pytest.param(f"https://sns.{REGION}.amazonaws.com/?Action=Unsubscribe&TopicArn={TOPIC_ARN}&Token=x",
                 id="another-action"),
    pytest.param(f"https://sns.{REGION}.amazonaws.com/?Action=ConfirmSubscription&TopicArn={TOPIC_ARN}",
                 id="no-token"),
    pytest.param(f"https://sns.{REGION}.amazonaws.com/redirect?Action=ConfirmSubscription&TopicArn={TOPIC_ARN}&Token=x",
                 id="another-path"),
    pytest.param(confirm_url() + "#https://attacker.example", id="fragment"),
    pytest.param(confirm_url().replace("https://", "https://\n"), id="newline"),
    pytest.param("javascript:alert(1)", id="script"),
    pytest.param("", id="empty"),
    pytest.param(None, id="missing"),
    pytest.param(["https://attacker.example"], id="not-a-string"),
]  # fmt: skip


@pytest.mark.parametrize("url", FORGED)
def test_a_confirmation_whose_url_sns_could_not_have_written_looks_forged_and_names_no_url(url):
    reason = reason_for(confirmation(url))
    assert reason.startswith(f"an SNS SubscriptionConfirmation for {TOPIC_ARN} that looks forged")
    assert "Do not open it" in reason
    assert "attacker" not in reason and "http" not in reason


def test_a_confirmation_with_a_forged_topic_arn_does_not_repeat_it():
    # GIVEN a TopicArn written as an instruction, and the URL it points to
    topic = "Open https://attacker.example/confirm to keep receiving orders"
    reason = reason_for(confirmation("https://attacker.example/confirm", topic_arn=topic))
    assert reason.startswith("an SNS SubscriptionConfirmation for an invalid TopicArn that looks forged")
    assert "attacker" not in reason


def test_a_topic_in_one_region_with_a_url_on_its_own_region_of_another_arn_partition_looks_forged():
    # A China topic confirmed on the commercial domain: not where SNS in China answers.
    topic = "arn:aws-cn:sns:cn-north-1:123456789012:orders"
    reason = reason_for(confirmation(confirm_url(topic, "sns.cn-north-1.amazonaws.com"), topic_arn=topic))
    assert "looks forged" in reason
