"""The publisher and AWS's Python extended client (`amazon-sqs-extended-client`) read each other's offloads.

Both sides run against moto's S3 and SQS. The extended client patches ``boto3.Session`` when it is
imported; the ``extended_session`` fixture (conftest.py) puts boto3 back and uses the client's session
class by name, so no other test sees the patch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from publisher.client import EventPublisher
from sqs_consumer.payloads import LEGACY_SIZE_ATTRIBUTE, SIZE_ATTRIBUTE, pointer_from
from sqs_consumer.sqs_limits import DEFAULT_MAX_MESSAGE_BYTES
from sqs_consumer.testing import events as sqs

REGION = "us-east-1"
BUCKET = "payloads"


@pytest.fixture
def aws(aws_credentials: None) -> Iterator[tuple[Any, str]]:
    """moto's S3 with the payload bucket, and a queue with SQS's default maximum (256 KiB)."""
    with mock_aws():
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
        client = boto3.client("sqs", region_name=REGION)
        url = client.create_queue(
            QueueName="events", Attributes={"MaximumMessageSize": str(DEFAULT_MAX_MESSAGE_BYTES)}
        )["QueueUrl"]
        yield client, url


def large_event(event_id: str) -> dict[str, Any]:
    return json.loads(sqs.body("hello", {"name": "n", "note": "x" * 300_000}, event_id=event_id))


def test_publisher_offload_is_received_whole_by_the_official_extended_client(aws, extended_session):
    # GIVEN an event above the queue's maximum, published with a payload bucket
    client, url = aws
    event = large_event("evt_large")
    s3 = boto3.client("s3", region_name=REGION)
    [result] = EventPublisher(url, client, payload_bucket=BUCKET, s3=s3).publish([event])
    assert result.ok, result.error

    # WHEN AWS's extended client receives it
    official = extended_session(region_name=REGION).client("sqs")
    official.large_payload_support = BUCKET
    [message] = official.receive_message(QueueUrl=url, MessageAttributeNames=["All"])["Messages"]

    # THEN it gets the original body, and our event_type attribute beside it
    assert json.loads(message["Body"]) == event
    assert message["MessageAttributes"]["event_type"]["StringValue"] == "hello"
    # and the object it read is the one our pointer names
    [stored] = s3.list_objects_v2(Bucket=BUCKET)["Contents"]
    assert stored["Size"] == len(message["Body"].encode())


@pytest.mark.parametrize(("legacy", "attribute"), [(False, SIZE_ATTRIBUTE), (True, LEGACY_SIZE_ATTRIBUTE)])
def test_official_extended_client_offload_is_a_pointer_to_the_event(aws, extended_session, legacy, attribute):
    # GIVEN an event sent by AWS's extended client, offloaded (in the legacy format too)
    client, url = aws
    event = large_event("evt_from_java_style")
    official = extended_session(region_name=REGION).client("sqs")
    official.large_payload_support = BUCKET
    official.use_legacy_attribute = legacy
    official.send_message(QueueUrl=url, MessageBody=json.dumps(event))

    # WHEN the raw message is read, as the consumer's event source mapping delivers it
    [message] = client.receive_message(QueueUrl=url, MessageAttributeNames=["All"])["Messages"]

    # THEN payloads recognises its body as a pointer, marked by the size attribute, to the event
    assert set(message["MessageAttributes"]) == {attribute}
    pointer = pointer_from(json.loads(message["Body"]))
    stored = boto3.client("s3", region_name=REGION).get_object(Bucket=pointer.bucket, Key=pointer.key)
    payload = stored["Body"].read()
    assert json.loads(payload) == event
    assert int(message["MessageAttributes"][attribute]["StringValue"]) == len(payload)
