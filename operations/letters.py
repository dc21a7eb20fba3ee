"""Reading a dead-letter queue: its messages decoded, its count, its source queues."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqs_consumer.models.trace import TRACE_HEADER_ATTRIBUTE, trace_id
from sqs_consumer.quarantine import ATTRIBUTE_PREFIX

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


@dataclass(frozen=True)
class DeadLetter:
    """A DLQ message, decoded: quarantined (with a kind and reason) or out of retries."""

    message_id: str
    source_message_id: str
    body: str
    kind: str | None
    reason: str | None
    event_type: str | None
    receive_count: str | None
    source_queue_arn: str | None = None
    event_id: str | None = None
    # The X-Ray trace header the copy carries (the quarantine and the redrive keep the record's).
    trace_header: str | None = None

    @property
    def trace_id(self) -> str | None:
        return trace_id(self.trace_header)

    @property
    def quarantined(self) -> bool:
        return self.kind is not None


def decode(message: dict[str, Any]) -> DeadLetter:
    attributes = {
        name.removeprefix(ATTRIBUTE_PREFIX): value.get("StringValue")
        for name, value in message.get("MessageAttributes", {}).items()
        if name.startswith(ATTRIBUTE_PREFIX)
    }
    source_arn = attributes.get("source_queue_arn")
    return DeadLetter(
        message_id=message["MessageId"],
        source_message_id=attributes.get("source_message_id") or message["MessageId"],
        body=message["Body"],
        kind=attributes.get("kind"),
        reason=attributes.get("reason"),
        event_type=attributes.get("event_type"),
        receive_count=attributes.get("receive_count") or message.get("Attributes", {}).get("ApproximateReceiveCount"),
        source_queue_arn=source_arn if source_arn and source_arn != "-" else None,
        event_id=event_id_of(message["Body"]),
        trace_header=message.get("Attributes", {}).get(TRACE_HEADER_ATTRIBUTE),
    )


def event_id_of(body: str) -> str | None:
    """The event_id in a body, as far as the body alone tells: the event itself, or the event an SNS
    notification or an EventBridge event carries (an offloaded event's is in S3: None)."""
    document = _json(body)
    if not isinstance(document, dict):
        return None
    if document.get("Type") == "Notification" and isinstance(document.get("Message"), str):
        document = _json(document["Message"])
    elif "detail-type" in document and isinstance(document.get("detail"), dict):
        detail = document["detail"]
        document = detail if "event_id" in detail else {"event_id": document.get("id")}
    event_id = document.get("event_id") if isinstance(document, dict) else None
    return event_id if isinstance(event_id, str) and event_id else None


def _json(text: str) -> object:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


@dataclass
class QueueCount:
    visible: int
    in_flight: int

    def describe(self) -> str:
        return f"about {self.visible} visible and {self.in_flight} in flight"


def approximate_count(client: SQSClient, queue_url: str) -> QueueCount:
    attributes = client.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return QueueCount(
        int(attributes.get("ApproximateNumberOfMessages", 0)),
        int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
    )


def receive(client: SQSClient, queue_url: str, count: int, visibility: int, wait: int) -> list[dict[str, Any]]:
    messages = client.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=min(10, count),
        VisibilityTimeout=visibility,
        WaitTimeSeconds=wait,
        MessageAttributeNames=["All"],
        MessageSystemAttributeNames=["All"],
    ).get("Messages", [])
    return [dict(message) for message in messages]


def release(client: SQSClient, queue_url: str, handles: Sequence[str]) -> None:
    """Make received messages visible again at once."""
    for start in range(0, len(handles), 10):
        client.change_message_visibility_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                for i, handle in enumerate(handles[start : start + 10])
            ],
        )


def dead_letter_sources(client: SQSClient, dlq_url: str) -> list[str]:
    """The queues whose redrive policy targets this DLQ (their URLs)."""
    return list(client.list_dead_letter_source_queues(QueueUrl=dlq_url).get("queueUrls", []))
