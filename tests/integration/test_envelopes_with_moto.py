"""Each shape a producer may send, through the Lambda entry point, against moto's SQS, DynamoDB and S3.

The messages are sent to a real (moto) queue, received by a plain client as Lambda's event source
mapping would, and given to the entry point in Lambda's event shape. AWS's own Python extended
client (``amazon-sqs-extended-client``) writes the offloaded ones in the interop tests.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from typing import Any

import boto3
import botocore.session
import pytest
from moto import mock_aws

from sqs_consumer.models import DocumentProcessedEvent, HelloEvent
from sqs_consumer.models.record import RecordInfo
from sqs_consumer.registry import EventRegistry, Route
from sqs_consumer.testing import events as sqs
from sqs_consumer.testing.events import eventbridge_event, sns_notification
from sqs_consumer.testing.fakes import FakeContext
from tests.conftest import failed_ids

REGION = "us-east-1"
TABLE = "consumer-idempotency"
BUCKET = "consumer-payloads"


class Effects:
    def __init__(self) -> None:
        self.count: Counter[str] = Counter()
        self.infos: dict[str, RecordInfo] = {}

    def __call__(self, event: Any, info: RecordInfo) -> None:
        self.count[event.event_id] += 1
        self.infos[event.event_id] = info


@pytest.fixture
def stack(aws_credentials, monkeypatch):
    """Moto's queue, DLQ, idempotency table and payload bucket, and the function's environment."""
    with mock_aws():
        sqs_client = boto3.client("sqs", region_name=REGION)
        queue_url = sqs_client.create_queue(QueueName="orders")["QueueUrl"]
        dlq_url = sqs_client.create_queue(QueueName="orders-dlq")["QueueUrl"]
        boto3.client("dynamodb", region_name=REGION).create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
        monkeypatch.setenv("DLQ_URL", dlq_url)
        monkeypatch.setenv("IDEMPOTENCY_TABLE", TABLE)
        monkeypatch.setenv("PAYLOAD_BUCKET", BUCKET)
        monkeypatch.setenv("MAX_RECEIVE_COUNT", "5")
        yield queue_url, dlq_url


@pytest.fixture
def entry_point(monkeypatch):
    """The Lambda entry point, its consumer built from the environment with a counting handler."""
    from sqs_consumer import handler
    from sqs_consumer.settings import get_settings

    effects = Effects()
    registry = EventRegistry([Route(HelloEvent, effects), Route(DocumentProcessedEvent, effects)])
    get_settings.cache_clear()
    consumer = handler.build_consumer(get_settings(), registry)
    monkeypatch.setattr(handler, "_consumer", lambda: consumer)
    yield handler.lambda_handler, effects
    get_settings.cache_clear()


def delivered(queue_url: str) -> list[dict[str, Any]]:
    """The queue's messages as Lambda's event source mapping delivers them, read by a plain (unpatched) client."""
    client: Any = botocore.session.get_session().create_client("sqs", region_name=REGION)
    arn = client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    records = []
    receive = {"QueueUrl": queue_url, "MaxNumberOfMessages": 10, "MessageAttributeNames": ["All"],
               "AttributeNames": ["All"]}  # fmt: skip
    while messages := client.receive_message(**receive).get("Messages"):
        for message in messages:
            attributes = _lambda_attributes(message.get("MessageAttributes", {}))
            record = sqs.record(message["Body"], message_id=message["MessageId"], queue_arn=arn,
                                message_attributes=attributes)  # fmt: skip
            record["receiptHandle"] = message["ReceiptHandle"]
            records.append(record)
            client.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return records


def _lambda_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    return {
        name: {"stringValue": value.get("StringValue"), "stringListValues": [], "binaryListValues": [],
               "dataType": value["DataType"]}
        for name, value in attributes.items()
    }  # fmt: skip


def hello(event_id: str) -> str:
    return sqs.body("hello", {"name": event_id}, event_id=event_id)


def put_payload(text: str) -> str:
    key = f"payloads/{uuid.uuid4()}"
    boto3.client("s3", region_name=REGION).put_object(Bucket=BUCKET, Key=key, Body=text.encode())
    return key


def test_each_shape_reaches_its_handler_once_and_a_redelivery_is_a_duplicate(stack, entry_point):
    queue_url, dlq_url = stack
    handle, effects = entry_point
    client = boto3.client("sqs", region_name=REGION)
    offloaded = hello("e-offloaded")
    pointer = json.dumps(["software.amazon.payloadoffloading.PayloadS3Pointer",
                          {"s3BucketName": BUCKET, "s3Key": put_payload(offloaded)}])  # fmt: skip
    size: dict[str, Any] = {"ExtendedPayloadSize": {"DataType": "Number", "StringValue": str(len(offloaded))}}
    sns_pointer = json.dumps(["software.amazon.payloadoffloading.PayloadS3Pointer",
                              {"s3BucketName": BUCKET, "s3Key": put_payload(hello("e-sns-offloaded"))}])  # fmt: skip
    client.send_message(QueueUrl=queue_url, MessageBody=hello("e-alone"))
    client.send_message(QueueUrl=queue_url, MessageBody=sns_notification(hello("e-sns"), message_id="sns-1"))
    client.send_message(QueueUrl=queue_url, MessageBody=eventbridge_event(json.loads(hello("e-eb-detail"))))
    client.send_message(QueueUrl=queue_url, MessageBody=eventbridge_event({"name": "x"}, event_id="e-eb-plain"))
    client.send_message(QueueUrl=queue_url, MessageBody=pointer, MessageAttributes=size)
    client.send_message(QueueUrl=queue_url, MessageBody=sns_notification(
        sns_pointer, attributes={"ExtendedPayloadSize": ("Number", "200")}))  # fmt: skip
    records = delivered(queue_url)

    assert failed_ids(handle(sqs.event(*records), FakeContext())) == []
    expected = {"e-alone", "e-sns", "e-eb-detail", "e-eb-plain", "e-offloaded", "e-sns-offloaded"}
    assert effects.count == Counter(dict.fromkeys(expected, 1))
    assert effects.infos["e-sns"].sns is not None and effects.infos["e-sns"].sns.message_id == "sns-1"
    assert effects.infos["e-eb-plain"].eventbridge is not None
    assert str(effects.infos["e-offloaded"].payload_pointer).startswith(f"s3://{BUCKET}/payloads/")
    assert effects.infos["e-sns-offloaded"].sns is not None

    # A redelivery of the whole batch (the mapping's retry after a crash) runs nothing again.
    assert failed_ids(handle(sqs.event(*records), FakeContext())) == []
    assert effects.count == Counter(dict.fromkeys(expected, 1))
    dlq = boto3.client("sqs", region_name=REGION)
    assert dlq.receive_message(QueueUrl=dlq_url).get("Messages", []) == []
    # The consumer never deletes a payload: its message may come back.
    assert len(boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=BUCKET)["Contents"]) == 2


def test_a_missing_payload_goes_to_the_dlq_with_its_pointer_body_and_size_attribute(stack, entry_point):
    queue_url, dlq_url = stack
    handle, effects = entry_point
    client = boto3.client("sqs", region_name=REGION)
    pointer = json.dumps(["software.amazon.payloadoffloading.PayloadS3Pointer",
                          {"s3BucketName": BUCKET, "s3Key": "never-written"}])  # fmt: skip
    originals: dict[str, Any] = {f"attr{index}": {"DataType": "String", "StringValue": "v"} for index in range(8)}
    client.send_message(QueueUrl=queue_url, MessageBody=pointer, MessageAttributes={
        **originals, "ExtendedPayloadSize": {"DataType": "Number", "StringValue": "4096"}})  # fmt: skip

    assert failed_ids(handle(sqs.event(*delivered(queue_url)), FakeContext())) == []

    [dead] = client.receive_message(QueueUrl=dlq_url, MessageAttributeNames=["All"])["Messages"]
    assert dead["Body"] == pointer
    attributes = dead["MessageAttributes"]
    assert attributes["quarantine.kind"]["StringValue"] == "payload_missing"
    assert "never-written" in attributes["quarantine.reason"]["StringValue"]
    assert attributes["ExtendedPayloadSize"] == {"StringValue": "4096", "DataType": "Number"}
    assert len(attributes) <= 10
    assert effects.count == Counter()


@pytest.mark.parametrize("legacy", [False, True], ids=["ExtendedPayloadSize", "SQSLargePayloadSize"])
def test_an_event_sent_by_aws_python_extended_client_reaches_its_handler(stack, entry_point, extended_session, legacy):
    queue_url, _ = stack
    handle, effects = entry_point
    extended: Any = extended_session(region_name=REGION).client("sqs")
    extended.large_payload_support = BUCKET
    extended.always_through_s3 = True
    extended.use_legacy_attribute = legacy
    extended.send_message(QueueUrl=queue_url, MessageBody=hello("e-extended"))
    [record] = delivered(queue_url)
    assert "PayloadS3Pointer" in record["body"] or "MessageS3Pointer" in record["body"]
    assert ("SQSLargePayloadSize" if legacy else "ExtendedPayloadSize") in record["messageAttributes"]

    assert failed_ids(handle(sqs.event(record), FakeContext())) == []
    assert effects.count == Counter({"e-extended": 1})
    info = effects.infos["e-extended"]
    assert info.payload_pointer is not None and info.payload_pointer.bucket == BUCKET
