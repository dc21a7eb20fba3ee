"""Builders for SQS events in the exact shape Lambda delivers them."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

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
) -> dict[str, Any]:
    """One SQS record as Lambda's event source mapping delivers it."""
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
    return {
        "messageId": message_id,
        "receiptHandle": f"AQEB{uuid.uuid5(uuid.NAMESPACE_OID, message_id).hex}",
        "body": message_body,
        "attributes": attributes,
        "messageAttributes": message_attributes or {},
        "md5OfBody": hashlib.md5(message_body.encode()).hexdigest(),  # SQS's own checksum
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn or (FIFO_QUEUE_ARN if group_id is not None else QUEUE_ARN),
        "awsRegion": REGION,
    }


def event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}
