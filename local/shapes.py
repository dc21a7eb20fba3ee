"""Events in the shapes upstream services deliver them to the queue (docs/design.md §3).

An SNS notification as SNS writes it with raw message delivery off (its default), an EventBridge event
as a rule's SQS target receives it without an input transformer (its ``detail`` an event, or a plain
event's payload routed by ``detail-type``), and a payload offloaded to S3 with the pointer body and size
attribute of AWS's extended clients (sqs_consumer/payloads.py). The local demo, the fault run and the
sample events publish these, so each reaches the consumer the way it does in AWS.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from sqs_consumer.payloads import PayloadPointer, size_attribute

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ACCOUNT = "123456789012"
REGION = "us-east-1"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:orders-topic"
SOURCE = "com.example.orders"
# The shapes besides the event alone: each a kind of the fault run and a sample of `make event --shape`.
SNS = "sns"
EVENTBRIDGE_DETAIL = "eventbridge"  # detail is an event
EVENTBRIDGE_PLAIN = "eventbridge-plain"  # detail is a payload, detail-type its event type
OFFLOADED = "offloaded"
SHAPES = (SNS, EVENTBRIDGE_DETAIL, EVENTBRIDGE_PLAIN, OFFLOADED)


def _stable_id(seed: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, seed))


def sns_notification(message: str, *, event_type: str | None = None) -> str:
    """SNS's JSON around ``message``: the body SQS holds with raw delivery off, attributes inside it."""
    message_id = _stable_id(f"sns:{message}")
    document: dict[str, Any] = {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": TOPIC_ARN,
        "Message": message,
        "Timestamp": "2026-11-27T10:00:00.123Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLEpH+DcEwjAPg8O9mY8dReBSwksfg2S7WKQcikcNKWLQjwu6A4VbeS0QHVCkhRS7fUQvi2egU3N858fiTDN6bkkOx"
        "YDVrY0Ad8L10Hs3zH81mtnPk5uvvolIC1CXGu43obcgFxeL3khZl8IKvO61GWB6jI9b5+gLPoBc1Q=",
        "SigningCertURL": f"https://sns.{REGION}.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem",
        "UnsubscribeURL": f"https://sns.{REGION}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={TOPIC_ARN}:"
        + _stable_id(TOPIC_ARN),
    }
    if event_type is not None:
        document["MessageAttributes"] = {"event_type": {"Type": "String", "Value": event_type}}
    return json.dumps(document)


def eventbridge_event(detail: dict[str, Any], *, detail_type: str, event_id: str) -> str:
    """An EventBridge event as a rule's SQS target delivers it (no InputPath, no input transformer)."""
    return json.dumps({
        "version": "0", "id": event_id, "detail-type": detail_type, "source": SOURCE, "account": ACCOUNT,
        "time": "2026-11-27T10:00:00Z", "region": REGION, "resources": [], "detail": detail,
    })  # fmt: skip


def offload(s3: S3Client, bucket: str, body: str) -> tuple[str, dict[str, Any]]:
    """Put ``body`` in ``bucket`` as an extended client does: the pointer body and its size attribute."""
    key = str(uuid.uuid4())
    data = body.encode()
    s3.put_object(Bucket=bucket, Key=key, Body=data)
    return PayloadPointer(bucket, key).body(), size_attribute(len(data))


def wrap(shape: str, event: dict[str, Any]) -> str:
    """The body that delivers ``event`` in ``shape`` (an SNS or EventBridge one; offloading needs S3)."""
    if shape == SNS:
        return sns_notification(json.dumps(event), event_type=event["event_type"])
    if shape == EVENTBRIDGE_DETAIL:
        return eventbridge_event(event, detail_type=event["event_type"], event_id=_stable_id(event["event_id"]))
    if shape == EVENTBRIDGE_PLAIN:
        # A plain event: its id is the event_id and its detail-type the event type the consumer routes by.
        return eventbridge_event(event["payload"], detail_type=event["event_type"], event_id=event["event_id"])
    raise ValueError(f"no body for shape {shape!r} without S3: one of {', '.join(SHAPES[:3])}")
