"""The publisher: validation before send, SQS batch limits, retries of failed entries."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest

from publisher.__main__ import main
from publisher.client import MAX_BATCH_BYTES, EventPublisher
from tests.support import sqs_events as sqs


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
     ["--queue-url", "https://sqs/q.fifo", "{}"]],
)  # fmt: skip
def test_cli_bad_arguments_print_usage_and_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "usage:" in capsys.readouterr().err


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
