"""The DLQ message: original body, the reason as attributes, SendMessage shape."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import pytest

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

from sqs_consumer.errors import QuarantineFailedError
from sqs_consumer.quarantine import MAX_MESSAGE_ATTRIBUTES, MAX_REASON_CHARS, QuarantinedMessage, SqsQuarantine

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def message(**overrides: Any) -> QuarantinedMessage:
    fields: dict[str, Any] = {
        "body": "{not json",
        "kind": "malformed_json",
        "reason": "Invalid JSON",
        "source_message_id": "m-1",
        "source_queue_arn": "arn:aws:sqs:us-east-1:123456789012:orders",
        "receive_count": 2,
    }
    fields.update(overrides)
    return QuarantinedMessage(**fields)


def test_attributes_carry_the_reason():
    attributes = message(event_type="hello").attributes(NOW)
    values = {name: value["StringValue"] for name, value in attributes.items()}
    assert values == {
        "quarantine.kind": "malformed_json",
        "quarantine.reason": "Invalid JSON",
        "quarantine.source_message_id": "m-1",
        "quarantine.source_queue_arn": "arn:aws:sqs:us-east-1:123456789012:orders",
        "quarantine.receive_count": "2",
        "quarantine.quarantined_at": "2026-11-28T12:00:00.000+00:00",
        "quarantine.event_type": "hello",
    }


def test_attributes_keep_original_ones_in_send_format_within_the_limit():
    originals = {
        "tenant": {"stringValue": "acme", "dataType": "String"},
        "blob": {"binaryValue": base64.b64encode(b"\x00\x01").decode(), "dataType": "Binary"},
    }
    originals.update({f"extra{i}": {"stringValue": str(i), "dataType": "Number"} for i in range(5)})

    attributes = message(original_attributes=originals).attributes(NOW)

    assert len(attributes) == MAX_MESSAGE_ATTRIBUTES
    assert attributes["tenant"] == {"DataType": "String", "StringValue": "acme"}
    assert attributes["blob"] == {"DataType": "Binary", "BinaryValue": b"\x00\x01"}


def test_attributes_truncate_a_long_reason():
    attributes = message(reason="x" * 5000).attributes(NOW)
    assert len(attributes["quarantine.reason"]["StringValue"]) == MAX_REASON_CHARS


class RecordingClient:
    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[dict] = []
        self.error = error

    def send_message(self, **params):
        self.calls.append(params)
        if self.error:
            raise self.error
        return {"MessageId": "dlq-1"}


def test_sqs_quarantine_creates_its_client_once_on_first_send():
    client = RecordingClient()
    created: list[str | None] = []

    def factory(endpoint):
        created.append(endpoint)
        return cast("SQSClient", client)

    quarantine = SqsQuarantine("https://sqs/dlq", endpoint_url="http://127.0.0.1:5000", client_factory=factory)
    assert created == []
    quarantine.send(message())
    quarantine.send(message())
    assert created == ["http://127.0.0.1:5000"]
    assert len(client.calls) == 2
    assert client.calls[0]["MessageBody"] == "{not json"
    assert "MessageGroupId" not in client.calls[0]


def test_sqs_quarantine_fifo_keeps_group_and_deduplicates_on_source_id():
    client = RecordingClient()
    quarantine = SqsQuarantine("https://sqs/dlq.fifo", client_factory=lambda _: cast("SQSClient", client))
    quarantine.send(message(message_group_id="tenant-a"))
    assert client.calls[0]["MessageGroupId"] == "tenant-a"
    assert client.calls[0]["MessageDeduplicationId"] == "m-1"


def test_sqs_quarantine_wraps_send_errors():
    quarantine = SqsQuarantine(
        "https://sqs/dlq", client_factory=lambda _: cast("SQSClient", RecordingClient(OSError("down")))
    )
    with pytest.raises(QuarantineFailedError, match="down"):
        quarantine.send(message())
