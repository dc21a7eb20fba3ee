"""SQS events in the exact shape Lambda delivers them, and bodies in every shape upstream services
write (docs/design.md §3): the event alone, an SNS notification, an EventBridge event, an S3 pointer."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from sqs_consumer.payloads import LEGACY_SIZE_ATTRIBUTE, SIZE_ATTRIBUTE, PayloadPointer

ACCOUNT = "123456789012"
REGION = "us-east-1"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:orders-queue"
FIFO_QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:orders-queue.fifo"
SENT_AT_MS = 1_795_000_000_000


def body(event_type: str = "hello", payload: dict[str, Any] | None = None, **fields: Any) -> str:
    """A message body following the contract (docs/design.md §3)."""
    document: dict[str, Any] = {
        "event_id": fields.pop("event_id", f"evt_{uuid.uuid4().hex[:12]}"),
        "event_type": event_type,
        "occurred_at": "2026-11-27T10:00:00Z",
        "payload": payload if payload is not None else {"name": "world"},
    }
    document.update(fields)
    return json.dumps(document)


def record(
    message_body: str,
    *,
    message_id: str | None = None,
    receive_count: int = 1,
    sent_timestamp_ms: int = SENT_AT_MS,
    group_id: str | None = None,
    sequence_number: int = 1,
    queue_arn: str | None = None,
    message_attributes: dict[str, Any] | None = None,
    trace_header: str | None = None,
) -> dict[str, Any]:
    """One SQS record as Lambda's event source mapping delivers it (``trace_header``: its AWSTraceHeader)."""
    message_id = message_id or str(uuid.uuid4())
    attributes: dict[str, Any] = {
        "ApproximateReceiveCount": str(receive_count),
        "SentTimestamp": str(sent_timestamp_ms),
        "SenderId": "AIDAIENQZJOLO23YVJ4VO",
        "ApproximateFirstReceiveTimestamp": str(sent_timestamp_ms + 5),
    }
    if group_id is not None:
        attributes.update(
            MessageGroupId=group_id,
            MessageDeduplicationId=hashlib.sha256(message_body.encode()).hexdigest(),
            SequenceNumber=str(18_850_000_000_000_000_000 + sequence_number),
        )
    if trace_header is not None:
        attributes["AWSTraceHeader"] = trace_header
    return {
        "messageId": message_id,
        "receiptHandle": f"AQEB{uuid.uuid5(uuid.NAMESPACE_OID, message_id).hex}",
        "body": message_body,
        "attributes": attributes,
        "messageAttributes": message_attributes or {},
        "md5OfBody": hashlib.md5(message_body.encode(), usedforsecurity=False).hexdigest(),  # SQS's own checksum
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn or (FIFO_QUEUE_ARN if group_id is not None else QUEUE_ARN),
        "awsRegion": REGION,
    }


def event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:orders-topic"


def sns_notification(
    message: str, *, message_id: str | None = None, subject: str | None = None,
    attributes: dict[str, tuple[str, str]] | None = None,
) -> str:  # fmt: skip
    """SNS's JSON around ``message`` when it delivers to SQS with raw message delivery off."""
    document: dict[str, Any] = {
        "Type": "Notification",
        "MessageId": message_id or str(uuid.uuid4()),
        "TopicArn": TOPIC_ARN,
        "Message": message,
        "Timestamp": "2026-11-27T10:00:00.123Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLEpH+..",
        "SigningCertURL": f"https://sns.{REGION}.amazonaws.com/SimpleNotificationService-0000.pem",
        "UnsubscribeURL": f"https://sns.{REGION}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={TOPIC_ARN}:1",
    }
    if subject is not None:
        document["Subject"] = subject
    if attributes:
        document["MessageAttributes"] = {
            name: {"Type": kind, "Value": value} for name, (kind, value) in attributes.items()
        }
    return json.dumps(document)


def eventbridge_event(detail: dict[str, Any], *, detail_type: str = "hello", event_id: str | None = None,
                      source: str = "com.example.orders", resources: list[str] | None = None) -> str:  # fmt: skip
    """An EventBridge event as a rule's SQS target receives it (no input transformer)."""
    return json.dumps({
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": ACCOUNT,
        "time": "2026-11-27T10:00:00Z",
        "region": REGION,
        "resources": resources or [],
        "detail": detail,
    })  # fmt: skip


def size_attribute(size: int, *, legacy: bool = False) -> dict[str, Any]:
    """The size attribute of an offloaded payload, as Lambda's event carries message attributes."""
    name = LEGACY_SIZE_ATTRIBUTE if legacy else SIZE_ATTRIBUTE
    return {name: {"stringValue": str(size), "stringListValues": [], "binaryListValues": [], "dataType": "Number"}}


def pointer_body(bucket: str, key: str) -> str:
    return PayloadPointer(bucket, key).body()
