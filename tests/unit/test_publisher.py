"""The publisher: validation before send, SQS batch limits, retries of failed entries."""

from __future__ import annotations

import json
import uuid
from typing import Any, cast

import pytest

from publisher.__main__ import main
from publisher.client import MAX_BATCH_BYTES, EventPublisher
from sqs_consumer.payloads import SIZE_ATTRIBUTE, pointer_from
from sqs_consumer.sqs_limits import message_size
from sqs_consumer.testing import events as sqs


class FakeSqs:
    """SendMessageBatch that fails chosen entry ids on the first attempts."""

    def __init__(self, transient_failures: int = 0, sender_fault_ids: frozenset[str] = frozenset()) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self._transient = transient_failures
        self._sender_fault = sender_fault_ids

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(Entries)
        successful, failed = [], []
        for entry in Entries:
            if entry["Id"] in self._sender_fault:
                failed.append({"Id": entry["Id"], "Code": "InvalidParameterValue", "SenderFault": True})
            elif entry["Id"] == "0" and self._transient > 0:
                failed.append({"Id": entry["Id"], "Code": "InternalError", "SenderFault": False})
            else:
                successful.append({"Id": entry["Id"], "MessageId": f"m-{entry['Id']}"})
        self._transient -= 1
        return {"Successful": successful, "Failed": failed}


def events(count: int, **payload: Any) -> list[dict[str, Any]]:
    return [json.loads(sqs.body("hello", {"name": "n", **payload}, event_id=f"evt_{i}")) for i in range(count)]


def publisher(client: FakeSqs, url: str = "https://sqs/q") -> EventPublisher:
    return EventPublisher(url, cast(Any, client), sleep=lambda _: None)


def test_publisher_chunks_by_ten_entries():
    client = FakeSqs()
    results = publisher(client).publish(events(23))
    assert [len(call) for call in client.calls] == [10, 10, 3]
    assert all(result.ok for result in results)
    assert [r.event_id for r in results] == [f"evt_{i}" for i in range(23)]


def test_publisher_chunks_by_total_size():
    client = FakeSqs()
    big = events(3, note="x" * 400_000)
    publisher(client).publish(big)
    assert [len(call) for call in client.calls] == [2, 1]
    for call in client.calls:
        assert sum(len(entry["MessageBody"]) for entry in call) <= MAX_BATCH_BYTES


def test_publisher_rejects_invalid_events_without_sending():
    client = FakeSqs()
    bad = {"event_id": "evt_bad", "event_type": "document.processed", "payload": {"document_id": ""}}
    results = publisher(client).publish([bad, *events(1)])
    assert not results[0].ok and results[0].error is not None and "invalid_payload" in results[0].error
    assert results[1].ok
    assert [entry["MessageBody"] for call in client.calls for entry in call] == [json.dumps(events(1)[0],
                                                                                 separators=(",", ":"))]  # fmt: skip


def test_publisher_retries_transient_entry_failures():
    client = FakeSqs(transient_failures=2)
    results = publisher(client).publish(events(3))
    assert all(result.ok for result in results)
    assert [[entry["Id"] for entry in call] for call in client.calls] == [["0", "1", "2"], ["0"], ["0"]]


def test_publisher_gives_up_after_max_attempts():
    client = FakeSqs(transient_failures=99)
    results = EventPublisher("https://sqs/q", cast(Any, client), max_attempts=3, sleep=lambda _: None).publish(
        events(2)
    )
    assert not results[0].ok and "not sent after retries" in (results[0].error or "")
    assert results[1].ok
    assert len(client.calls) == 3


def test_publisher_does_not_retry_sender_faults():
    client = FakeSqs(sender_fault_ids=frozenset({"1"}))
    results = publisher(client).publish(events(2))
    assert results[0].ok and not results[1].ok
    assert len(client.calls) == 1


def test_publisher_sets_event_type_attribute_and_fifo_ids():
    client = FakeSqs()
    publisher(client, "https://sqs/q.fifo").publish(events(1), group_id="tenant-a")
    [entry] = client.calls[0]
    assert entry["MessageAttributes"]["event_type"] == {"DataType": "String", "StringValue": "hello"}
    assert entry["MessageGroupId"] == "tenant-a"
    assert entry["MessageDeduplicationId"] == "evt_0"


def test_publisher_fifo_requires_group_id():
    with pytest.raises(ValueError, match="group id"):
        publisher(FakeSqs(), "https://sqs/q.fifo").publish(events(1))


@pytest.mark.parametrize(
    "argv",
    [[], ["--queue-url"], ["--queue-url", "https://sqs/q", "not json"],
     ["--queue-url", "https://sqs/q.fifo", "{}"],
     ["--queue-url", "https://sqs/q", "--concurrency", "0", "{}"],
     ["--queue-url", "https://sqs/q", "--concurrency", "many", "{}"],
     ["--queue-url", "https://sqs/q.fifo", "--group-id", "g", "--group-field", "payload.name", "{}"]],
)  # fmt: skip
def test_cli_bad_arguments_are_one_line_and_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("sqs-publish: error: ")
    assert line.endswith("(see sqs-publish --help)")


class RefusingSqs:
    """SendMessageBatch that always raises the given client error."""

    def __init__(self, code: str, status: int) -> None:
        self.calls = 0
        self.code, self.status = code, status

    def send_message_batch(self, **params: Any) -> Any:
        from botocore.exceptions import ClientError

        self.calls += 1
        response: Any = {
            "Error": {"Code": self.code, "Message": "no"},
            "ResponseMetadata": {"HTTPStatusCode": self.status},
        }
        raise ClientError(response, "SendMessageBatch")


@pytest.mark.parametrize(
    ("code", "status", "calls"),
    [
        ("AccessDenied", 403, 1),
        ("AWS.SimpleQueueService.NonExistentQueue", 400, 1),
        ("RequestThrottled", 400, 5),
        ("InternalError", 500, 5),
    ],
)
def test_publisher_does_not_retry_permanent_errors(code, status, calls):
    client = RefusingSqs(code, status)
    [result] = EventPublisher("https://sqs/q", cast(Any, client), sleep=lambda _: None).publish(events(1))
    assert not result.ok
    assert code in (result.error or "")
    assert client.calls == calls


def test_publisher_fifo_deduplication_ids_never_collide_or_break_sqs_rules():
    # GIVEN distinct event ids that share their first 128 characters, and one with characters SQS refuses
    client = FakeSqs()
    long_a, long_b = "a" * 128 + "-1", "a" * 128 + "-2"
    documents = [json.loads(sqs.body("hello", event_id=event_id)) for event_id in (long_a, long_b, "évt 1", "evt_1")]

    EventPublisher("https://sqs/q.fifo", cast(Any, client), sleep=lambda _: None).publish(documents, group_id="g")

    ids = [entry["MessageDeduplicationId"] for call in client.calls for entry in call]
    # THEN each event has its own id, SQS accepts each, and a plain id is kept as it is
    assert len(set(ids)) == 4
    assert all(len(i) <= 128 and all(33 <= ord(c) <= 126 for c in i) for i in ids)
    assert ids[3] == "evt_1"


def test_publisher_refuses_a_message_over_the_queues_own_maximum_without_sending():
    class SmallQueue(FakeSqs):
        def get_queue_attributes(self, **params: Any) -> Any:
            return {"Attributes": {"MaximumMessageSize": "1024"}}

    client = SmallQueue()
    big, small = events(1, note="x" * 2_000)[0], events(1)[0]

    results = publisher(client).publish([big, small])

    assert not results[0].ok and "1024" in (results[0].error or "")
    assert results[1].ok
    assert [len(call) for call in client.calls] == [1]


class FakeS3:
    """put_object that records each object, or raises ``error``."""

    def __init__(self, error: Exception | None = None) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self._error = error

    def put_object(self, Bucket: str, Key: str, Body: bytes, **params: Any) -> Any:
        if self._error is not None:
            raise self._error
        self.objects[(Bucket, Key)] = Body
        return {}


def event_of_message_size(size: int, event_id: str) -> dict[str, Any]:
    """A hello event whose message (compact body plus its event_type attribute) is ``size`` bytes."""
    document = json.loads(sqs.body("hello", {"name": "n", "note": ""}, event_id=event_id))
    attribute = {"event_type": {"DataType": "String", "StringValue": "hello"}}
    document["payload"]["note"] = "x" * (size - message_size(json.dumps(document, separators=(",", ":")), attribute))
    return document


def test_publisher_offloads_a_message_one_byte_over_the_queues_maximum():
    # GIVEN a queue whose maximum is 4,096 bytes, and events of exactly 4,096 and 4,097 bytes
    client, s3 = FakeSqs(), FakeS3()
    at_limit, over = event_of_message_size(4_096, "evt_at"), event_of_message_size(4_097, "evt_over")
    sender = EventPublisher("https://sqs/q", cast(Any, client), sleep=lambda _: None, max_message_bytes=4_096,
                            payload_bucket="payloads", s3=s3)  # fmt: skip

    # WHEN both are published
    results = sender.publish([at_limit, over])

    # THEN the first is sent as it is, the second as a pointer to a uuid4 key holding the event
    assert all(result.ok for result in results)
    inline, offloaded = [entry for call in client.calls for entry in call]
    assert json.loads(inline["MessageBody"]) == at_limit
    pointer = pointer_from(json.loads(offloaded["MessageBody"]))
    assert pointer.bucket == "payloads" and uuid.UUID(pointer.key).version == 4
    stored = s3.objects[("payloads", pointer.key)]
    assert json.loads(stored) == over
    assert offloaded["MessageAttributes"] == {
        "event_type": {"DataType": "String", "StringValue": "hello"},
        SIZE_ATTRIBUTE: {"DataType": "Number", "StringValue": str(len(stored))},
    }
    assert len(s3.objects) == 1


def test_publisher_without_a_payload_bucket_refuses_an_event_over_the_maximum():
    client = FakeSqs()
    sender = EventPublisher("https://sqs/q", cast(Any, client), sleep=lambda _: None, max_message_bytes=4_096)
    results = sender.publish([event_of_message_size(4_097, "evt_over"), *events(1)])
    assert (
        not results[0].ok and "4096 bytes" in (results[0].error or "") and "payload bucket" in (results[0].error or "")
    )
    assert results[1].ok and [len(call) for call in client.calls] == [1]


def test_publisher_reports_a_failed_payload_write_for_its_event_alone():
    # GIVEN an S3 that refuses every write (after botocore's own retries)
    from botocore.exceptions import ClientError

    response: Any = {"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."},
                     "ResponseMetadata": {"HTTPStatusCode": 503}}  # fmt: skip
    refused = ClientError(response, "PutObject")
    client = FakeSqs()
    sender = EventPublisher("https://sqs/q", cast(Any, client), sleep=lambda _: None, max_message_bytes=4_096,
                            payload_bucket="payloads", s3=FakeS3(refused))  # fmt: skip

    # WHEN a large event is published between two small ones
    results = sender.publish([events(1)[0], event_of_message_size(5_000, "evt_big"), *events(2)[1:]])

    # THEN the large one fails with the S3 error and where it was going; it is not sent; the others are
    assert [result.ok for result in results] == [True, False, True]
    assert "payload not stored at s3://payloads/" in (results[1].error or "") and "SlowDown" in (results[1].error or "")
    assert [json.loads(entry["MessageBody"])["event_id"] for call in client.calls for entry in call] == [
        "evt_0",
        "evt_1",
    ]


def test_publisher_fills_a_request_up_to_the_byte_limit_exactly():
    # GIVEN a queue whose maximum (so the request's) is 10,000 bytes
    client = FakeSqs()
    sender = EventPublisher("https://sqs/q", cast(Any, client), sleep=lambda _: None, max_message_bytes=10_000)

    # WHEN two messages of 5,000 bytes are sent, then 5,000 and 5,001
    sender.publish([event_of_message_size(5_000, "a1"), event_of_message_size(5_000, "a2")])
    sender.publish([event_of_message_size(5_000, "b1"), event_of_message_size(5_001, "b2")])

    # THEN the first pair fits one request, the second does not
    assert [len(call) for call in client.calls] == [2, 1, 1]


def sent_event_ids(client: FakeSqs) -> list[str]:
    return [json.loads(entry["MessageBody"])["event_id"] for call in client.calls for entry in call]


def test_fifo_does_not_retry_an_entry_failed_behind_accepted_ones():
    # GIVEN SQS failing entry 0 once (not the sender's fault) while it accepts entries 1 and 2
    client = FakeSqs(transient_failures=1)

    # WHEN three events of one group go to a FIFO queue (the standard queue retries it, above)
    results = publisher(client, "https://sqs/q.fifo").publish(events(3), group_id="tenant-a")

    # THEN evt_0 is reported failed, not sent after evt_1 and evt_2
    assert [result.ok for result in results] == [False, True, True]
    assert "InternalError" in (results[0].error or "")
    assert "not retried: later messages of group tenant-a were already accepted" in (results[0].error or "")
    assert len(client.calls) == 1


def test_fifo_group_after_an_entry_failed_for_good_is_not_sent():
    # GIVEN SQS refusing evt_12 (the sender's fault), in the second request of one group
    client = FakeSqs(sender_fault_ids=frozenset({"12"}))

    # WHEN 25 events of the group are published
    results = publisher(client, "https://sqs/q.fifo").publish(events(25), group_id="g")

    # THEN the third request is never sent, and each of its events names the one that failed
    assert [len(call) for call in client.calls] == [10, 10]
    assert "InvalidParameterValue" in (results[12].error or "")
    assert [result.error for result in results[20:]] == [
        "not sent: an earlier message of group g was not sent (evt_12)"
    ] * 5
    assert all(result.ok for result in results[:12])


def test_fifo_group_after_a_failed_payload_write_is_not_sent():
    from botocore.exceptions import ClientError

    response: Any = {"Error": {"Code": "AccessDenied", "Message": "no"}, "ResponseMetadata": {"HTTPStatusCode": 403}}
    client = FakeSqs()
    sender = EventPublisher("https://sqs/q.fifo", cast(Any, client), sleep=lambda _: None, max_message_bytes=4_096,
                            payload_bucket="payloads", s3=FakeS3(ClientError(response, "PutObject")))  # fmt: skip
    documents = [events(1)[0], event_of_message_size(5_000, "evt_big"), *events(3)[1:]]

    results = sender.publish(documents, group_id="g")

    assert [result.ok for result in results] == [True, False, False, False]
    assert "payload not stored" in (results[1].error or "")
    assert results[2].error == "not sent: an earlier message of group g was not sent (evt_big)"
    assert sent_event_ids(client) == ["evt_0"]
