"""Bodies in the shapes upstream services deliver to SQS (docs/design.md §3), as AWS writes them."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqs_consumer.payloads import LEGACY_SIZE_ATTRIBUTE, SIZE_ATTRIBUTE, PayloadPointer
from tests.support.sqs_events import ACCOUNT, REGION

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
