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
from sqs_consumer.quarantine import (
    DLQ_ROOM_BYTES,
    MAX_REASON_BYTES,
    MIN_REASON_BYTES,
    QuarantinedMessage,
    SqsQuarantine,
)
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


def test_a_body_at_the_queue_maximum_keeps_every_attribute_whole_in_a_dlq_with_the_room():
    # GIVEN a body at the queue's maximum, and every quarantine value at its longest
    queue_max = 262_144
    longest = message(
        body="x" * queue_max,
        kind="k" * 64,
        reason="r" * 5_000,
        source_message_id="6c0c7a2e-1f4b-4a8e-9d3c-0b8f5e2a7d91",
        source_queue_arn="arn:aws-us-gov:sqs:us-gov-west-1:123456789012:" + "q" * 80,
        receive_count=1_000,
        event_type="t" * 1_000,
    )

    # WHEN its attributes are built for a DLQ with DLQ_ROOM_BYTES above the queue's maximum
    attributes = longest.attributes(NOW, queue_max + DLQ_ROOM_BYTES)

    # THEN nothing is dropped and the reason is cut only by its own cap
    assert len([name for name in attributes if name.startswith("quarantine.")]) == 7
    assert len(attributes["quarantine.reason"]["StringValue"].encode()) == MAX_REASON_BYTES


@pytest.mark.parametrize("reason", ["r" * 5_000, "\u00e9" * 3_000, "\U0001f600" * 2_000, "short"])
def test_a_copy_always_carries_a_kind_and_a_reason_or_is_not_sent(reason):
    # GIVEN bodies leaving every room from none to a few hundred bytes in the DLQ
    for room in range(400):
        body = "x" * (4_096 - room)

        # WHEN the attributes are built
        try:
            attributes = message(body=body, reason=reason, event_type="hello").attributes(NOW, 4_096)
        except QuarantineFailedError as error:
            # THEN either the copy is refused, saying why and what to change...
            assert "give the DLQ" in str(error)
            assert f"(malformed_json: {reason[:8]}" in str(error)
            continue
        # ...or it carries a kind and a reason, no empty value, and fits
        assert attributes["quarantine.kind"]["StringValue"] == "malformed_json"
        kept = attributes["quarantine.reason"]["StringValue"]
        assert reason.startswith(kept.removesuffix("…"))
        assert len(kept.encode()) >= min(len(reason.encode()), MIN_REASON_BYTES - len("…".encode()))
        assert all(value["StringValue"] for value in attributes.values())
        assert message_size(body, attributes) <= 4_096


def test_a_body_without_room_for_its_reason_is_refused_with_the_reason_in_the_error():
    # GIVEN a body exactly at the DLQ's maximum (a queue as large as its DLQ)
    body = "x" * 4_096

    # WHEN its attributes are built
    with pytest.raises(QuarantineFailedError) as refused:
        message(body=body, reason="Invalid JSON: EOF while parsing").attributes(NOW, 4_096)

    # THEN the error says what to change, and keeps the reason for the log
    assert f"give the DLQ {DLQ_ROOM_BYTES} bytes above the queue's maximum message size" in str(refused.value)
    assert "(malformed_json: Invalid JSON: EOF while parsing)" in str(refused.value)


def test_an_empty_reason_or_kind_is_never_sent_empty():
    attributes = message(kind="", reason="").attributes(NOW)
    assert attributes["quarantine.kind"]["StringValue"] == "unknown"
    assert attributes["quarantine.reason"]["StringValue"] == "unknown"


def test_an_original_attribute_with_an_empty_value_is_left_out():
    originals = {
        "empty": {"stringValue": "", "dataType": "String"},
        "tenant": {"stringValue": "acme", "dataType": "String"},
    }
    attributes = message(original_attributes=originals).attributes(NOW)
    assert "empty" not in attributes
    assert attributes["tenant"] == {"DataType": "String", "StringValue": "acme"}


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
