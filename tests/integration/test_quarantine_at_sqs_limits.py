"""Poison at SQS's limits reaches the DLQ with its reason: the consumer against a strict SQS over moto.

moto accepts copies SQS refuses (huge or forbidden attribute values, body plus attributes over
the size limit); ``StrictSqs`` refuses them as SQS does, so each of these fails on a consumer
that copies the poison into its attributes as it came.
"""

from __future__ import annotations

import json
from typing import Any, cast

import boto3
import pytest
from moto import mock_aws

from sqs_consumer.pipeline import BatchConsumer
from sqs_consumer.quarantine import SqsQuarantine
from sqs_consumer.routes import REGISTRY
from sqs_consumer.sqs_limits import LARGEST_MAX_MESSAGE_BYTES, message_size
from sqs_consumer.testing import events as sqs
from sqs_consumer.testing.fakes import FakeContext
from tests.conftest import failed_ids
from tests.support.strict_sqs import StrictSqs


@pytest.fixture
def strict(aws_credentials):
    with mock_aws():
        yield StrictSqs(boto3.client("sqs", region_name="us-east-1"))


def dlq(strict: StrictSqs, max_bytes: int) -> str:
    return strict.create_queue(QueueName=f"dlq-{max_bytes}", Attributes={"MaximumMessageSize": str(max_bytes)})[
        "QueueUrl"
    ]


def consumer_for(strict: StrictSqs, dlq_url: str, max_bytes: int) -> BatchConsumer:
    quarantine = SqsQuarantine(dlq_url, max_message_bytes=max_bytes, client_factory=lambda _: cast(Any, strict))
    return BatchConsumer(REGISTRY, quarantine, max_receive_count=4)


def dead_letters(strict: StrictSqs, url: str) -> list[dict]:
    return strict.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]).get(
        "Messages", []
    )


def reasons(message: dict) -> dict[str, str]:
    return {name: value["StringValue"] for name, value in message.get("MessageAttributes", {}).items()}


@pytest.mark.parametrize(
    ("event_type", "max_bytes"),
    [
        pytest.param("t" * 700_000, LARGEST_MAX_MESSAGE_BYTES, id="700KB-unknown-type"),
        pytest.param("\u0000", 262_144, id="nul-type"),
        pytest.param("\uffff", 262_144, id="non-character-type"),
    ],
)
def test_unknown_type_of_any_shape_is_quarantined_with_its_reason(strict, event_type, max_bytes):
    # GIVEN a message whose unknown event_type SQS could not carry as an attribute value
    url = dlq(strict, max_bytes)
    body = json.dumps({"event_id": "e1", "event_type": event_type, "payload": {}})
    record = sqs.record(body)

    # WHEN the consumer handles it
    response = consumer_for(strict, url, max_bytes).handle(sqs.event(record), FakeContext())

    # THEN SQS accepted the copy: the record is acknowledged and the DLQ says why
    assert strict.refused == []
    assert failed_ids(response) == []
    [dead] = dead_letters(strict, url)
    assert dead["Body"] == body
    assert reasons(dead)["quarantine.kind"] == "unknown_event_type"
    assert reasons(dead)["quarantine.reason"].startswith("unknown event_type")


def test_body_close_to_the_size_limit_is_quarantined_whole(strict):
    # GIVEN malformed JSON a few hundred bytes short of the DLQ's maximum size
    url = dlq(strict, 262_144)
    body = '{"event_id": "e1", "padding": "' + "x" * (262_144 - 300)
    record = sqs.record(body, message_attributes={"tenant": {"stringValue": "acme", "dataType": "String"}})

    response = consumer_for(strict, url, 262_144).handle(sqs.event(record), FakeContext())

    assert strict.refused == []
    assert failed_ids(response) == []
    [dead] = dead_letters(strict, url)
    assert dead["Body"] == body
    assert reasons(dead)["quarantine.kind"] == "malformed_json"
    assert message_size(body, {k: v for k, v in dead["MessageAttributes"].items()}) <= 262_144


def test_a_batch_of_large_poison_is_split_into_requests_sqs_accepts(strict):
    url = dlq(strict, 262_144)
    records = [sqs.record('{"big": "' + "x" * 60_000) for _ in range(10)]

    response = consumer_for(strict, url, 262_144).handle(sqs.event(*records), FakeContext())

    assert strict.refused == []
    assert failed_ids(response) == []
    seen = []
    while batch := dead_letters(strict, url):
        seen += batch
    assert len(seen) == 10


def test_a_copy_redriven_and_quarantined_again_carries_its_new_reason(strict):
    # GIVEN a DLQ copy, redriven with its attributes, that fails every receive this time
    url = dlq(strict, 262_144)
    consumer = consumer_for(strict, url, 262_144)
    first = sqs.record("not json")
    consumer.handle(sqs.event(first), FakeContext())
    [copy] = dead_letters(strict, url)
    strict.delete_message(QueueUrl=url, ReceiptHandle=copy["ReceiptHandle"])
    as_delivered = {
        name: {"stringValue": value["StringValue"], "dataType": value["DataType"]}
        for name, value in copy["MessageAttributes"].items()
    }
    again = sqs.record(
        sqs.body("hello", {"name": "x", "simulate": "fail"}), receive_count=4, message_attributes=as_delivered
    )

    # WHEN it is quarantined again
    consumer.handle(sqs.event(again), FakeContext())

    # THEN the new copy shows the new kind, reason and source message id
    [second] = dead_letters(strict, url)
    assert reasons(second)["quarantine.kind"] == "retries_exhausted"
    assert reasons(second)["quarantine.source_message_id"] == again["messageId"]
    assert "4 receive(s)" in reasons(second)["quarantine.reason"]


def test_strict_double_refuses_what_sqs_refuses(strict):
    url = dlq(strict, 1_024)
    with pytest.raises(Exception, match="InvalidParameterValue"):
        strict.send_message(QueueUrl=url, MessageBody="x", MessageAttributes={
            f"a{i}": {"DataType": "String", "StringValue": "v"} for i in range(11)})  # fmt: skip
    with pytest.raises(Exception, match="InvalidParameterValue"):
        strict.send_message(QueueUrl=url, MessageBody="x", MessageAttributes={
            "a": {"DataType": "String", "StringValue": "\u0000"}})  # fmt: skip
    with pytest.raises(Exception, match="InvalidParameterValue"):
        strict.send_message(QueueUrl=url, MessageBody="x" * 1_025)


def test_strict_double_refuses_an_empty_attribute_value(strict):
    # SQS answers: Message (user) attribute 'x' must contain a non-empty value of type 'String'.
    url = dlq(strict, 1_024)
    with pytest.raises(Exception, match="must contain a non-empty value"):
        strict.send_message(QueueUrl=url, MessageBody="x",
                            MessageAttributes={"x": {"DataType": "String", "StringValue": ""}})  # fmt: skip


def test_a_body_at_the_dlq_maximum_stays_on_its_queue_rather_than_reach_the_dlq_without_a_reason(strict):
    # GIVEN malformed JSON as large as the DLQ allows (its queue as large as its DLQ)
    url = dlq(strict, 262_144)
    record = sqs.record("{" + "x" * (262_144 - 1))

    # WHEN the consumer handles it
    response = consumer_for(strict, url, 262_144).handle(sqs.event(record), FakeContext())

    # THEN no copy without a reason reaches the DLQ: the record stays on its queue, listed
    assert failed_ids(response) == [record["messageId"]]
    assert dead_letters(strict, url) == []


def test_every_copy_sqs_accepts_says_why_whatever_room_the_body_leaves(strict):
    # GIVEN poison bodies leaving every room from none to 160 bytes in a 4 KiB DLQ
    url = dlq(strict, 4_096)
    consumer = consumer_for(strict, url, 4_096)
    records = [sqs.record("{" + "x" * (4_096 - 1 - room)) for room in range(160)]

    # WHEN the consumer handles them, ten a batch
    listed: set[str] = set()
    for start in range(0, len(records), 10):
        listed |= set(failed_ids(consumer.handle(sqs.event(*records[start : start + 10]), FakeContext())))

    # THEN SQS refused nothing, each record is either listed or in the DLQ with a kind and a reason
    assert strict.refused == []
    by_body = {record["body"]: record["messageId"] for record in records}
    seen = {}
    while batch := dead_letters(strict, url):
        for letter in batch:
            # Where room is short the source message id gives way to the reason: the body tells them apart.
            seen[by_body[letter["Body"]]] = reasons(letter)
            strict.delete_message(QueueUrl=url, ReceiptHandle=letter["ReceiptHandle"])
    assert listed | set(seen) == {record["messageId"] for record in records}
    assert not listed & set(seen)
    assert all(
        letter["quarantine.kind"] == "malformed_json" and letter["quarantine.reason"] for letter in seen.values()
    )
