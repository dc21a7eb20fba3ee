"""Each row of docs/design.md §4, on the consumer with in-memory adapters."""

from __future__ import annotations

import json

import pytest

from sqs_consumer.errors import NonRetryableError
from sqs_consumer.models import DocumentProcessedEvent, HelloEvent
from sqs_consumer.models.record import RecordInfo
from sqs_consumer.pipeline import BatchConsumer
from sqs_consumer.registry import UNREGISTERED_TYPE, EventRegistry, Route
from sqs_consumer.routes import REGISTRY
from sqs_consumer.testing import events as sqs
from sqs_consumer.testing.fakes import FakeClock, FakeContext, InMemoryDLQ
from tests.conftest import failed_ids
from tests.support.fakes import slow_registry


def test_consumer_success_is_not_listed(consumer, context, quarantine):
    # GIVEN two valid events
    event = sqs.event(sqs.record(sqs.body("hello")), sqs.record(sqs.body("document.processed", {"document_id": "d"})))

    # WHEN the batch is handled
    response = consumer.handle(event, context)

    # THEN nothing is listed (all are deleted) and nothing is quarantined
    assert response == {"batchItemFailures": []}
    assert quarantine.sent == []


def test_consumer_handler_exception_is_retryable(consumer, context, quarantine):
    # GIVEN a batch where one handler raises
    ok = sqs.record(sqs.body("hello"))
    failing = sqs.record(sqs.body("hello", {"name": "x", "simulate": "fail"}))

    # WHEN it is handled
    response = consumer.handle(sqs.event(ok, failing), context)

    # THEN only the failing record is listed, and it is not quarantined
    assert failed_ids(response) == [failing["messageId"]]
    assert quarantine.sent == []


def test_consumer_flaky_record_fails_first_receive_then_succeeds(consumer, context):
    first = sqs.record(sqs.body("hello", {"name": "x", "simulate": "flaky"}), receive_count=1)
    second = dict(first, attributes={**first["attributes"], "ApproximateReceiveCount": "2"})

    assert failed_ids(consumer.handle(sqs.event(first), context)) == [first["messageId"]]
    assert failed_ids(consumer.handle(sqs.event(second), context)) == []


@pytest.mark.parametrize(
    ("message_body", "kind", "event_type"),
    [
        pytest.param('{"event_id": "e1", "event_type": ', "malformed_json", None, id="malformed-json"),
        pytest.param("[1, 2]", "invalid_envelope", None, id="not-an-object"),
        pytest.param(
            json.dumps({"event_type": "hello", "payload": {"name": "x"}}),
            "invalid_envelope",
            "hello",
            id="missing-event-id",
        ),
        pytest.param(json.dumps({"event_id": "e1", "payload": {}}), "invalid_envelope", None, id="missing-event-type"),
        pytest.param(
            sqs.body("hello", {"name": "x", "simulate": "explode"}), "invalid_payload", "hello", id="invalid-payload"
        ),
        pytest.param(
            sqs.body("document.processed", {"document_id": ""}),
            "invalid_payload",
            "document.processed",
            id="empty-document-id",
        ),
        pytest.param(
            sqs.body(UNREGISTERED_TYPE, {"id": 1}), "unknown_event_type", UNREGISTERED_TYPE, id="unknown-type"
        ),
    ],
)
def test_consumer_poison_message_is_quarantined_and_acknowledged(
    consumer, context, quarantine, message_body, kind, event_type
):
    # GIVEN a message that can never become a valid event
    poison = sqs.record(message_body, receive_count=1)

    # WHEN it is handled
    response = consumer.handle(sqs.event(poison), context)

    # THEN it is not listed (so it is deleted) and the DLQ got the original body with the reason
    assert failed_ids(response) == []
    [sent] = quarantine.sent
    assert sent.body == message_body
    assert sent.kind == kind
    assert sent.event_type == event_type
    assert sent.source_message_id == poison["messageId"]
    assert sent.source_queue_arn == sqs.QUEUE_ARN
    assert sent.receive_count == 1
    assert sent.reason


def test_consumer_non_retryable_handler_error_is_quarantined(context, quarantine):
    # GIVEN a handler that knows retrying cannot help
    def reject(event: DocumentProcessedEvent, record: RecordInfo) -> None:
        raise NonRetryableError("document was deleted upstream")

    consumer = BatchConsumer(EventRegistry([Route(DocumentProcessedEvent, reject)]), quarantine)
    record = sqs.record(sqs.body("document.processed", {"document_id": "gone"}))

    # WHEN it is handled
    response = consumer.handle(sqs.event(record), context)

    # THEN the record is acknowledged after the DLQ took it, with the handler's reason
    assert failed_ids(response) == []
    [sent] = quarantine.sent
    assert (sent.kind, sent.reason, sent.event_type) == (
        "non_retryable",
        "document was deleted upstream",
        "document.processed",
    )


def test_consumer_failed_quarantine_becomes_retryable_failure(consumer, context):
    # GIVEN a DLQ that refuses messages
    consumer = BatchConsumer(REGISTRY, InMemoryDLQ(fail=True))
    poison = sqs.record("not json")
    good = sqs.record(sqs.body("hello"))

    # WHEN a poison message is handled
    response = consumer.handle(sqs.event(poison, good), context)

    # THEN it stays on the queue (listed) instead of being dropped
    assert failed_ids(response) == [poison["messageId"]]


def test_consumer_near_timeout_lists_records_not_started(quarantine):
    # GIVEN 20 s left, a 5 s reserve and handlers taking 8 s each: the third would start 4 s before the timeout
    clock = FakeClock()
    consumer = BatchConsumer(slow_registry(clock, 8), quarantine, time_reserve_ms=5_000, max_concurrent_records=1,
                             timer=clock)  # fmt: skip
    records = [sqs.record(sqs.body("hello")) for _ in range(4)]
    context = FakeContext(remaining_ms=20_000, clock=clock)

    # WHEN the batch is handled
    response = consumer.handle(sqs.event(*records), context)

    # THEN the records not yet started are listed; the two that ran are not
    assert failed_ids(response) == [records[2]["messageId"], records[3]["messageId"]]


def test_consumer_entire_batch_failure_returns_every_record(consumer, context):
    # GIVEN a batch where every record fails with a retryable error
    records = [sqs.record(sqs.body("hello", {"name": "x", "simulate": "fail"})) for _ in range(3)]

    # WHEN it is handled
    response = consumer.handle(sqs.event(*records), context)

    # THEN the response lists all of them instead of raising (docs/decisions/002-all-failed-batch-returns-list.md)
    assert failed_ids(response) == [r["messageId"] for r in records]


def test_consumer_fifo_skips_rest_of_failed_group_only(consumer, context):
    # GIVEN a FIFO batch with two interleaved groups, where group a's second record fails
    a1, b1, a2, b2, a3 = (
        sqs.record(sqs.body("hello", {"name": "a1"}), group_id="a", sequence_number=1),
        sqs.record(sqs.body("hello", {"name": "b1"}), group_id="b", sequence_number=2),
        sqs.record(sqs.body("hello", {"name": "a2", "simulate": "fail"}), group_id="a", sequence_number=3),
        sqs.record(sqs.body("hello", {"name": "b2"}), group_id="b", sequence_number=4),
        sqs.record(sqs.body("hello", {"name": "a3"}), group_id="a", sequence_number=5),
    )
    seen: list[str] = []

    def track(event: HelloEvent, record: RecordInfo) -> None:
        seen.append(event.payload.name)
        if event.payload.simulate == "fail":
            raise RuntimeError("boom")

    consumer = BatchConsumer(EventRegistry([Route(HelloEvent, track)]), InMemoryDLQ())

    # WHEN it is handled
    response = consumer.handle(sqs.event(a1, b1, a2, b2, a3), context)

    # THEN a3 is listed without running, group b goes on, and order is kept
    assert failed_ids(response) == [a2["messageId"], a3["messageId"]]
    assert seen == ["a1", "b1", "a2", "b2"]


def test_consumer_fifo_poison_message_does_not_block_its_group(consumer, context, quarantine):
    a1 = sqs.record("{broken", group_id="a", sequence_number=1)
    a2 = sqs.record(sqs.body("hello"), group_id="a", sequence_number=2)

    response = consumer.handle(sqs.event(a1, a2), context)

    assert failed_ids(response) == []
    assert quarantine.message_ids == [a1["messageId"]]


def test_consumer_never_lists_a_quarantined_or_successful_record(consumer, context, quarantine):
    # GIVEN a mix of every outcome
    records = [
        sqs.record(sqs.body("hello")),
        sqs.record(sqs.body("hello", {"name": "x", "simulate": "fail"})),
        sqs.record("garbage"),
        sqs.record(sqs.body(UNREGISTERED_TYPE, {})),
    ]

    # WHEN handled
    response = consumer.handle(sqs.event(*records), context)

    # THEN listed and quarantined are disjoint and together with successes cover the batch
    listed = set(failed_ids(response))
    quarantined = set(quarantine.message_ids)
    assert listed == {records[1]["messageId"]}
    assert quarantined == {records[2]["messageId"], records[3]["messageId"]}
    assert not listed & quarantined


def test_consumer_empty_batch_returns_empty_response(consumer, context):
    assert consumer.handle({"Records": []}, context) == {"batchItemFailures": []}


def test_a_listed_record_of_one_batch_is_not_listed_in_the_next(consumer, context):
    # GIVEN one consumer (its Powertools processor lives as long as the execution environment)
    failing = sqs.record(sqs.body("hello", {"name": "x", "simulate": "fail"}))
    fine = [sqs.record(sqs.body("hello")) for _ in range(2)]

    # WHEN a batch with a failure is followed by one without
    first = consumer.handle(sqs.event(failing, fine[0]), context)
    second = consumer.handle(sqs.event(fine[1]), context)

    # THEN each response lists only its own failures
    assert failed_ids(first) == [failing["messageId"]]
    assert failed_ids(second) == []
