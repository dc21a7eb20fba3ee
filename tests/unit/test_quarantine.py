"""The DLQ message: original body, the reason as attributes, SendMessage shape."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import pytest

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

from sqs_consumer.budget import Deadline
from sqs_consumer.errors import DeadlineReachedError, QuarantineFailedError
from sqs_consumer.quarantine import MAX_REASON_BYTES, QuarantinedMessage, SqsQuarantine
from sqs_consumer.sqs_limits import MAX_MESSAGE_ATTRIBUTES, has_forbidden_characters, message_size

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
    reason = message(reason="x" * 5000).attributes(NOW)["quarantine.reason"]["StringValue"]
    assert len(reason.encode()) == MAX_REASON_BYTES
    assert reason.endswith("…")


def test_attributes_of_a_requarantined_copy_carry_the_new_reason():
    # GIVEN a DLQ copy that was redriven (its quarantine.* attributes came along) and failed again
    old = message(kind="malformed_json", reason="old reason", source_message_id="m-old").attributes(NOW)
    as_received = {name: {"stringValue": value["StringValue"], "dataType": "String"} for name, value in old.items()}

    # WHEN it is quarantined again
    attributes = message(
        kind="retries_exhausted", reason="new reason", source_message_id="m-new", original_attributes=as_received
    ).attributes(NOW)

    # THEN the copy says why it is there now
    assert attributes["quarantine.kind"]["StringValue"] == "retries_exhausted"
    assert attributes["quarantine.reason"]["StringValue"] == "new reason"
    assert attributes["quarantine.source_message_id"]["StringValue"] == "m-new"


@pytest.mark.parametrize("event_type", ["\u0000", "\uffff", "a\ud800b", "x" * 700_000])
def test_attributes_keep_to_sqs_characters_and_size_whatever_the_type(event_type):
    attributes = message(event_type=event_type, reason=f"unknown event_type {event_type!r}").attributes(NOW)
    for value in attributes.values():
        assert not has_forbidden_characters(value["StringValue"])
    assert len(attributes["quarantine.event_type"]["StringValue"].encode()) <= 256
    assert message_size("{not json", attributes) < 4_096


def test_attributes_fit_a_body_close_to_the_size_limit_by_trimming_the_reason():
    # GIVEN a body 600 bytes short of the DLQ's maximum size and a long reason
    body = "x" * (262_144 - 600)
    originals = {"tenant": {"stringValue": "t" * 300, "dataType": "String"}}

    attributes = message(body=body, reason="r" * 5_000, original_attributes=originals).attributes(NOW, 262_144)

    # THEN body and attributes fit, the body is whole, and what identifies the copy is there
    assert message_size(body, attributes) <= 262_144
    assert {"quarantine.kind", "quarantine.source_message_id", "quarantine.reason"} <= set(attributes)
    assert attributes["quarantine.reason"]["StringValue"].startswith("rrr")


def test_a_body_that_leaves_little_room_keeps_a_trimmed_reason_rather_than_other_attributes():
    # GIVEN a body that leaves room for the identifying attributes and 8 bytes more
    base = message(reason="r" * 5_000)
    identifying = sum(
        len(f"quarantine.{name}") + len("String") + len(value)
        for name, value in (("kind", base.kind), ("source_message_id", base.source_message_id),
                            ("source_queue_arn", base.source_queue_arn), ("receive_count", "2"))
    )  # fmt: skip
    room = identifying + len("quarantine.reason") + len("String") + 8
    body = "x" * (4_096 - room)

    # WHEN its attributes are built for a DLQ of 4 KiB
    attributes = message(body=body, reason="r" * 5_000).attributes(NOW, 4_096)

    # THEN the reason is there, trimmed, and everything fits; what gave way is the less important
    assert attributes["quarantine.reason"]["StringValue"].startswith("rrr")
    assert {"quarantine.kind", "quarantine.source_message_id", "quarantine.receive_count"} <= set(attributes)
    assert message_size(body, attributes) <= 4_096


def test_attributes_refuse_a_body_larger_than_the_dlq_allows():
    with pytest.raises(QuarantineFailedError, match="MaximumMessageSize"):
        message(body="x" * 2_000).attributes(NOW, 1_024)


DEADLINE = Deadline(lambda: 30_000, 1_000)


class RecordingClient:
    def __init__(self, error: Exception | None = None, failed_ids: tuple[str, ...] = ()) -> None:
        self.calls: list[dict] = []
        self.error = error
        self.failed_ids = failed_ids

    def send_message_batch(self, **params):
        self.calls.append(params)
        if self.error:
            raise self.error
        ids = [entry["Id"] for entry in params["Entries"]]
        return {
            "Successful": [{"Id": i, "MessageId": f"dlq-{i}"} for i in ids if i not in self.failed_ids],
            "Failed": [{"Id": i, "Code": "InternalError", "SenderFault": False} for i in ids if i in self.failed_ids],
        }


def test_sqs_quarantine_creates_its_client_once_and_batches_ten_per_request():
    client = RecordingClient()
    created: list[str | None] = []

    def factory(endpoint):
        created.append(endpoint)
        return cast("SQSClient", client)

    quarantine = SqsQuarantine("https://sqs/dlq", endpoint_url="http://127.0.0.1:5000", client_factory=factory)
    assert created == []
    assert quarantine.send_batch([message(source_message_id=f"m-{i}") for i in range(23)], DEADLINE) == [None] * 23
    quarantine.send_batch([message()], DEADLINE)
    assert created == ["http://127.0.0.1:5000"]
    assert sorted(len(call["Entries"]) for call in client.calls) == [1, 3, 10, 10]
    assert client.calls[0]["Entries"][0]["MessageBody"] == "{not json"
    assert "MessageGroupId" not in client.calls[0]["Entries"][0]


def test_sqs_quarantine_keeps_a_request_within_the_size_limit():
    client = RecordingClient()
    quarantine = SqsQuarantine(
        "https://sqs/dlq", max_message_bytes=262_144, client_factory=lambda _: cast("SQSClient", client)
    )
    quarantine.send_batch([message(body="x" * 100_000, source_message_id=f"m-{i}") for i in range(5)], DEADLINE)
    assert sorted(len(call["Entries"]) for call in client.calls) == [1, 2, 2]


def test_sqs_quarantine_fifo_keeps_group_and_deduplicates_on_source_id():
    client = RecordingClient()
    quarantine = SqsQuarantine("https://sqs/dlq.fifo", client_factory=lambda _: cast("SQSClient", client))
    quarantine.send_batch([message(message_group_id="tenant-a")], DEADLINE)
    assert client.calls[0]["Entries"][0]["MessageGroupId"] == "tenant-a"
    assert client.calls[0]["Entries"][0]["MessageDeduplicationId"] == "m-1"


def test_sqs_quarantine_reports_each_entry_and_wraps_errors():
    partly = SqsQuarantine(
        "https://sqs/dlq", client_factory=lambda _: cast("SQSClient", RecordingClient(failed_ids=("1",)))
    )
    results = partly.send_batch([message(source_message_id="a"), message(source_message_id="b")], DEADLINE)
    assert results[0] is None
    assert isinstance(results[1], QuarantineFailedError)

    down = SqsQuarantine(
        "https://sqs/dlq", client_factory=lambda _: cast("SQSClient", RecordingClient(OSError("down")))
    )
    [error] = down.send_batch([message()], DEADLINE)
    assert isinstance(error, QuarantineFailedError)
    assert "down" in str(error)


def test_sqs_quarantine_sends_nothing_once_the_deadline_passed():
    client = RecordingClient()
    quarantine = SqsQuarantine("https://sqs/dlq", client_factory=lambda _: cast("SQSClient", client))
    [error] = quarantine.send_batch([message()], Deadline(lambda: 900, 1_000))
    assert isinstance(error, QuarantineFailedError)
    assert isinstance(error.__cause__, DeadlineReachedError) or "timeout" in str(error)
    assert client.calls == []
