"""The publisher under concurrency: bounded in-flight requests and input, FIFO order per group, results in order."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from typing import Any, cast

from publisher.client import EventPublisher, field_group
from publisher.dispatch import Window
from sqs_consumer.testing import events as sqs


class SlowSqs:
    """SendMessageBatch that answers after a random delay, records what arrived in which order, counts
    requests in flight (and of one group), and fails chosen entries on their first attempt."""

    def __init__(self, *, seed: int = 7, fail_first: frozenset[str] = frozenset()) -> None:
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._fail_first = set(fail_first)
        self.arrived: list[dict[str, Any]] = []  # entries, in the order SQS took them
        self.in_flight = 0
        self.peak = 0
        self.groups_in_flight: dict[str, int] = {}
        self.same_group_overlap = False

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        groups = {str(entry["MessageGroupId"]) for entry in Entries if "MessageGroupId" in entry}
        with self._lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            for group in groups:
                self.same_group_overlap |= self.groups_in_flight.get(group, 0) > 0
                self.groups_in_flight[group] = self.groups_in_flight.get(group, 0) + 1
            delay = self._random.uniform(0.001, 0.01)
        time.sleep(delay)
        with self._lock:
            successful, failed = [], []
            for entry in Entries:
                event_id = json.loads(entry["MessageBody"])["event_id"]
                if event_id in self._fail_first:
                    self._fail_first.discard(event_id)
                    failed.append({"Id": entry["Id"], "Code": "InternalError", "SenderFault": False})
                else:
                    self.arrived.append(entry)
                    successful.append({"Id": entry["Id"], "MessageId": f"m-{event_id}"})
            for group in groups:
                self.groups_in_flight[group] -= 1
            self.in_flight -= 1
        return {"Successful": successful, "Failed": failed}


def events(count: int, groups: int = 1) -> list[dict[str, Any]]:
    return [json.loads(sqs.body("hello", {"name": f"g{i % groups}"}, event_id=f"evt_{i}")) for i in range(count)]


def publisher(client: SlowSqs, url: str = "https://sqs/q", concurrency: int = 4, **window: int) -> EventPublisher:
    return EventPublisher(url, cast(Any, client), sleep=lambda _: None, max_message_bytes=262_144,
                          window=Window(concurrency, **window))  # fmt: skip


def test_publisher_keeps_fifo_order_per_group_while_groups_overlap():
    # GIVEN 400 events of 5 groups, interleaved, to a FIFO queue, with a group per event
    client = SlowSqs()
    documents = events(400, groups=5)

    # WHEN published 4 requests at a time against an SQS that answers after random delays
    results = publisher(client, "https://sqs/q.fifo").publish(documents, group_id=field_group("payload.name"))

    # THEN every event is sent, each group's events reach SQS in input order, never two requests of
    # one group in flight together, and different groups' requests do overlap
    assert all(result.ok for result in results)
    for group in range(5):
        arrived = [
            json.loads(e["MessageBody"])["event_id"] for e in client.arrived if e["MessageGroupId"] == f"g{group}"
        ]
        assert arrived == [f"evt_{i}" for i in range(group, 400, 5)]
    assert not client.same_group_overlap
    assert client.peak > 1


def test_publisher_sends_one_group_one_request_at_a_time():
    client = SlowSqs()
    results = publisher(client, "https://sqs/q.fifo", concurrency=8).publish(events(100), group_id="tenant-a")
    assert all(result.ok for result in results)
    assert client.peak == 1
    assert [json.loads(e["MessageBody"])["event_id"] for e in client.arrived] == [f"evt_{i}" for i in range(100)]


def test_publisher_keeps_its_requests_in_flight_within_the_concurrency():
    client = SlowSqs()
    sender = publisher(client, concurrency=6)
    results = sender.publish(events(600))
    assert all(result.ok for result in results)
    assert client.peak == 6
    assert sender.peak_in_flight == 6


def test_publisher_results_are_in_input_order_with_retries_and_refusals_between():
    # GIVEN valid events, invalid ones among them, and entries SQS fails on their first attempt
    client = SlowSqs(fail_first=frozenset({"evt_3", "evt_57", "evt_140"}))
    documents: list[Any] = events(200)
    documents[10] = {"event_id": "evt_bad", "event_type": "hello", "payload": {}}

    # WHEN published concurrently
    results = publisher(client, concurrency=5).publish(documents)

    # THEN one result per event, in input order; the failed entries were sent again, each event once
    assert [result.event_id for result in results] == [f"evt_{i}" if i != 10 else "evt_bad" for i in range(200)]
    assert not results[10].ok and all(result.ok for i, result in enumerate(results) if i != 10)
    assert results[57].message_id == "m-evt_57"
    sent = [json.loads(entry["MessageBody"])["event_id"] for entry in client.arrived]
    assert sorted(sent) == sorted(f"evt_{i}" for i in range(200) if i != 10)


def test_publisher_reads_its_input_only_as_the_window_allows():
    # GIVEN an endless-looking stream whose reads are counted
    client = SlowSqs()
    read = 0

    def stream() -> Iterator[dict[str, Any]]:
        nonlocal read
        for document in events(2_000):
            read += 1
            yield document

    # WHEN results are taken one by one from a window of 50 events
    ahead = []
    for taken, result in enumerate(publisher(client, concurrency=3, events=50).stream(stream()), start=1):
        assert result.ok
        ahead.append(read - taken)

    # THEN the publisher never held more than the window beyond what it reported, and did fill it
    assert max(ahead) <= 50
    assert max(ahead) >= 40
    assert read == 2_000


def test_publisher_window_in_bytes_bounds_what_it_holds():
    client = SlowSqs()
    read = 0
    documents = [
        json.loads(sqs.body("hello", {"name": "n", "note": "x" * 10_000}, event_id=f"e{i}")) for i in range(300)
    ]

    def stream() -> Iterator[dict[str, Any]]:
        nonlocal read
        for document in documents:
            read += 1
            yield document

    ahead = [read - taken for taken, _ in enumerate(publisher(client, bytes=100_000).stream(stream()), start=1)]
    # about 10 KB each: 10 in the window, and the one read when it filled
    assert max(ahead) <= 11


def sent_ids(client: SlowSqs, group: str | None = None) -> list[str]:
    return [
        json.loads(e["MessageBody"])["event_id"] for e in client.arrived if group in (None, e.get("MessageGroupId"))
    ]


def test_fifo_entry_failed_behind_accepted_ones_is_not_retried_and_holds_back_its_group():
    # GIVEN two interleaved groups on a FIFO queue, and SQS failing evt_6 (group g0, 4th of its
    # request) once with a retryable error while it accepts the rest of that request
    client = SlowSqs(fail_first=frozenset({"evt_6"}))
    documents = events(60, groups=2)

    # WHEN published
    results = publisher(client, "https://sqs/q.fifo").publish(documents, group_id=field_group("payload.name"))

    # THEN evt_6 is not sent again (it would land after evt_8..evt_18), and says why
    assert not results[6].ok
    assert "InternalError" in (results[6].error or "")
    assert "not retried: later messages of group g0 were already accepted" in (results[6].error or "")
    # and g0's events after its request are not sent, each naming the event that failed
    for i in range(20, 60, 2):
        assert results[i].error == "not sent: an earlier message of group g0 was not sent (evt_6)"
    # while g0's messages that reached SQS are in input order, and group g1 is untouched
    assert sent_ids(client, "g0") == [f"evt_{i}" for i in range(0, 20, 2) if i != 6]
    assert sent_ids(client, "g1") == [f"evt_{i}" for i in range(1, 60, 2)]
    assert all(results[i].ok for i in range(1, 60, 2))


def test_fifo_failed_entries_with_no_later_accepted_entry_are_retried_in_order():
    # GIVEN SQS failing the last two entries of the first request once
    client = SlowSqs(fail_first=frozenset({"evt_8", "evt_9"}))

    # WHEN 20 events of one group are published
    results = publisher(client, "https://sqs/q.fifo").publish(events(20), group_id="g")

    # THEN they are retried, before the next request, and SQS took every event in input order
    assert all(result.ok for result in results)
    assert sent_ids(client) == [f"evt_{i}" for i in range(20)]


def test_standard_queue_retries_an_entry_failed_behind_accepted_ones():
    client = SlowSqs(fail_first=frozenset({"evt_3"}))
    results = publisher(client).publish(events(20))
    assert all(result.ok for result in results)
    assert sorted(sent_ids(client)) == sorted(f"evt_{i}" for i in range(20))


def test_publisher_sends_and_reports_what_it_has_while_the_producer_pauses():
    # GIVEN a producer that writes three events, then waits (at most 3 s) to be let go on
    client = SlowSqs()
    documents = events(4)
    let_go = threading.Event()
    waited_out: list[bool] = []

    def producer() -> Iterator[dict[str, Any]]:
        yield from documents[:3]
        waited_out.append(not let_go.wait(3))
        yield documents[3]

    # WHEN the results are taken as they come
    results = publisher(client).stream(producer())
    first_three = [next(results) for _ in range(3)]
    let_go.set()
    rest = list(results)

    # THEN the first three were sent and reported while the producer was still paused
    assert [result.event_id for result in first_three] == ["evt_0", "evt_1", "evt_2"]
    assert all(result.ok for result in first_three)
    assert waited_out == [False]
    assert [result.event_id for result in rest] == ["evt_3"] and rest[0].ok


def test_publisher_raises_the_error_of_its_input_after_the_results_before_it():
    client = SlowSqs()

    def broken() -> Iterator[dict[str, Any]]:
        yield from events(3)
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    results = publisher(client).stream(broken())
    try:
        taken = [result.event_id for result in results]
    except UnicodeDecodeError:
        pass
    else:
        raise AssertionError(f"the input's error was lost: {taken}")
