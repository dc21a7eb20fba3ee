"""A record's trace reaches what the consumer sends for it and every line about it: its follow-ups carry
its AWSTraceHeader, the lines after an internal error and about sent follow-ups name its event and
trace, and a traced handler call reports the record's final disposition."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pytest

from sqs_consumer.budget import Deadline
from sqs_consumer.models import HelloEvent
from sqs_consumer.models.followups import FollowUp
from sqs_consumer.models.record import RecordInfo
from sqs_consumer.observability import logger
from sqs_consumer.pipeline import BatchConsumer
from sqs_consumer.pipeline.batch import Batch
from sqs_consumer.registry import EventRegistry, Route
from sqs_consumer.testing import events as sqs
from sqs_consumer.testing.fakes import FakeContext, InMemoryDLQ, InMemoryIdempotency, InMemorySender
from sqs_consumer.tracing import SegmentEmitter
from tests.conftest import LogCapture, failed_ids

TRACE = "Root=1-6942a1b0-5f3c7e0a9b1d2c3e4f506172;Parent=53995c3f42cd8ad8;Sampled=1"
TRACE_ID = "1-6942a1b0-5f3c7e0a9b1d2c3e4f506172"
INVOCATION = "Root=1-6942a1c0-00112233445566778899aabb;Parent=1a2b3c4d5e6f7081;Sampled=1"


class HeaderKeepingSender(InMemorySender):
    """The in-memory destinations, keeping the trace header each accepted follow-up was sent with."""

    def __init__(self, *destinations: str) -> None:
        super().__init__(InMemorySender.to(*destinations).queue_urls)
        self.headers: list[str | None] = []

    def send(self, followups: Sequence[FollowUp], deadline: Deadline) -> list[Exception | None]:
        results = super().send(followups, deadline)
        self.headers += [f.trace_header for f, error in zip(followups, results, strict=True) if error is None]
        return results


class RecordedTrace(SegmentEmitter):
    """Tracing on in a sampled invocation; the subsegments kept instead of sent to the daemon."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 2000), environ={"_X_AMZN_TRACE_ID": INVOCATION})
        self.documents: list[dict[str, object]] = []

    def send(self, documents: list[dict[str, object]], **_: Any) -> int:
        self.documents += documents
        return len(documents)


def emitting_to(destination: str) -> EventRegistry:
    def handle(event: HelloEvent, record: RecordInfo) -> None:
        record.emit({"event_type": "hello", "payload": {"name": f"{event.payload.name}>"}}, to=destination)

    return EventRegistry([Route(HelloEvent, handle)])


def traced_record(event_id: str, receive_count: int = 1) -> dict[str, Any]:
    return sqs.record(sqs.body("hello", {"name": "a"}, event_id=event_id), message_id=f"m-{event_id}",
                      receive_count=receive_count, trace_header=TRACE)  # fmt: skip


def consumer(sender: InMemorySender, store: InMemoryIdempotency, **options: Any) -> BatchConsumer:
    return BatchConsumer(emitting_to("billing"), InMemoryDLQ(), time_reserve_ms=1_000, max_receive_count=5,
                         idempotency=store, followups=sender, **options)  # fmt: skip


def test_followups_carry_their_parents_trace_header_and_their_line_names_it(logs):
    # GIVEN a handler that emits a follow-up, and the consumer's debug lines on
    sender = HeaderKeepingSender("billing")
    logger.setLevel(logging.DEBUG)  # the logs fixture puts the level back

    # WHEN a record of a traced producer runs
    response = consumer(sender, InMemoryIdempotency()).handle(sqs.event(traced_record("evt_1")), FakeContext())

    # THEN its follow-up went in the same trace, and the line saying so names the event and the trace
    assert response == {"batchItemFailures": []}
    assert sender.headers == [TRACE]
    [line] = [line for line in logs.lines if line["message"] == "Follow-ups sent"]
    assert (line["event_id"], line["trace_id"]) == ("evt_1", TRACE_ID)


def test_followups_left_unsent_go_in_the_trace_of_the_record_delivered_again():
    # GIVEN a record whose follow-up was refused: it is listed, the follow-up kept in the store
    sender, store = HeaderKeepingSender("billing"), InMemoryIdempotency()
    sender.fail = True
    consumer(sender, store).handle(sqs.event(traced_record("evt_1")), FakeContext())

    # WHEN it is delivered again, a duplicate that sends what is left
    sender.fail = False
    response = consumer(sender, store).handle(sqs.event(traced_record("evt_1", receive_count=2)), FakeContext())

    # THEN the follow-up went with the record's trace header
    assert response == {"batchItemFailures": []}
    assert sender.headers == [TRACE]


def test_a_traced_record_whose_followups_were_not_sent_reports_its_final_disposition():
    # GIVEN tracing on, and a follow-up destination that refuses
    sender, tracing = HeaderKeepingSender("billing"), RecordedTrace()
    sender.fail = True

    # WHEN a record whose handler emits runs
    response = consumer(sender, InMemoryIdempotency(), tracing=tracing).handle(
        sqs.event(traced_record("evt_1")), FakeContext()
    )

    # THEN it is retried, and its subsegment says so (an error), not "succeeded"
    assert failed_ids(response) == ["m-evt_1"]
    [document] = tracing.documents
    annotations = document["annotations"]
    assert isinstance(annotations, dict)
    assert (annotations["event_id"], annotations["disposition"]) == ("evt_1", "failed")
    assert document["error"] is True


def test_a_traced_record_whose_followups_went_reports_success():
    sender, tracing = HeaderKeepingSender("billing"), RecordedTrace()

    consumer(sender, InMemoryIdempotency(), tracing=tracing).handle(sqs.event(traced_record("evt_1")), FakeContext())

    [document] = tracing.documents
    annotations = document["annotations"]
    assert isinstance(annotations, dict)
    assert annotations["disposition"] == "succeeded"
    assert "error" not in document


def test_an_internal_error_once_the_event_is_parsed_names_it_in_its_line(logs, monkeypatch: pytest.MonkeyPatch):
    # GIVEN a bug in the bookkeeping after a handler returned
    def broken(self: Batch, *_: object) -> None:
        raise RuntimeError("bookkeeping bug")

    monkeypatch.setattr(Batch, "succeed", broken)
    # WHEN a record runs, THEN it is listed, never lost, and the line names its message, its event and its trace
    _assert_listed_with_its_event_and_trace(logs)


def test_an_internal_error_while_parsing_a_valid_event_names_it_in_its_line(logs, monkeypatch: pytest.MonkeyPatch):
    # GIVEN a bug in making the record's job once its event is valid
    from sqs_consumer.pipeline import records

    def broken(*_: object) -> None:
        raise RuntimeError("parsing bug")

    monkeypatch.setattr(records, "Job", broken)
    # WHEN a record runs, THEN it is listed, never lost, and the line names its message, its event and its trace
    _assert_listed_with_its_event_and_trace(logs)


def _assert_listed_with_its_event_and_trace(logs: LogCapture) -> None:
    plain = BatchConsumer(EventRegistry([Route(HelloEvent, lambda event, record: None)]), InMemoryDLQ(),
                          time_reserve_ms=1_000)  # fmt: skip
    response = plain.handle(sqs.event(traced_record("evt_1")), FakeContext())
    assert failed_ids(response) == ["m-evt_1"]
    [line] = [line for line in logs.lines if line["message"] == "Record listed after an internal error"]
    assert (line["message_id"], line["event_id"], line["trace_id"]) == ("m-evt_1", "evt_1", TRACE_ID)
