"""Follow-up events on moto's DynamoDB and SQS: stored in the completion's item, sent with SendMessageBatch
(checked as SQS checks it), marked sent; a completion stored with follow-ups unsent (a crash between the
write and the send) is a duplicate on its next delivery, which sends them."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.moto_server import keep_batch_system_attributes
from sqs_consumer.budget import Deadline
from sqs_consumer.followups import SqsFollowUpSender, followup_event_id
from sqs_consumer.idempotency.dynamodb import DynamoDBIdempotency, DynamoDBStore
from sqs_consumer.models import HelloEvent
from sqs_consumer.models.followups import FollowUp
from sqs_consumer.models.record import RecordInfo
from sqs_consumer.pipeline import BatchConsumer
from sqs_consumer.registry import EventRegistry, Route
from sqs_consumer.testing import events as sqs
from sqs_consumer.testing.fakes import FakeContext, InMemoryDLQ
from tests.conftest import failed_ids
from tests.support.strict_sqs import StrictSqs

TABLE = "consumer-idempotency"


@pytest.fixture
def aws(aws_credentials) -> Any:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(TableName=TABLE, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                              AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                              BillingMode="PAY_PER_REQUEST")  # fmt: skip
        client = boto3.client("sqs", region_name="us-east-1")
        urls = {
            "billing": client.create_queue(QueueName="billing")["QueueUrl"],
            "ledger": client.create_queue(QueueName="ledger.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"],
        }
        yield dynamodb, client, urls


class Calls:
    def __init__(self) -> None:
        self.operations: list[str] = []

    def __call__(self, model: Any, **kwargs: Any) -> None:
        self.operations.append(model.name)


def subject(urls: dict[str, str], client: Any, handler: Any, calls: Calls | None = None) -> BatchConsumer:
    def store() -> DynamoDBStore:
        layer = DynamoDBStore(TABLE, 86_400)
        if calls is not None:
            layer.client.meta.events.register("before-call.dynamodb", calls)
        return layer

    sender = SqsFollowUpSender(urls, client_factory=lambda _endpoint: StrictSqs(client))  # type: ignore[arg-type,return-value]
    return BatchConsumer(EventRegistry([Route(HelloEvent, handler)]), InMemoryDLQ(),
                         idempotency=DynamoDBIdempotency(store), followups=sender)  # fmt: skip


def emit_to(*destinations: str) -> Any:
    def handle(event: HelloEvent, record: RecordInfo) -> None:
        for to in destinations:
            record.emit({"event_type": "hello", "payload": {"name": f"after {event.event_id}"}}, to=to)

    return handle


def received(client: Any, url: str) -> list[dict[str, Any]]:
    messages = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])
    return messages.get("Messages", [])


def stored_item(dynamodb: Any) -> dict[str, Any]:
    [item] = dynamodb.scan(TableName=TABLE)["Items"]
    return item


def test_a_followup_goes_after_the_completion_and_is_marked_sent_in_one_more_write(aws):
    # GIVEN a handler that emits to a standard and a FIFO queue
    dynamodb, client, urls = aws
    calls = Calls()

    # WHEN its record runs
    response = subject(urls, client, emit_to("billing", "ledger"), calls).handle(
        sqs.event(sqs.record(sqs.body("hello", {"name": "x"}, event_id="evt_1"))), FakeContext()
    )

    # THEN both queues got their follow-up, with the derived ids; the FIFO one grouped by the parent
    assert failed_ids(response) == []
    [billing] = received(client, urls["billing"])
    [ledger] = received(client, urls["ledger"])
    assert json.loads(billing["Body"])["event_id"] == followup_event_id("evt_1", 0)
    assert json.loads(ledger["Body"])["event_id"] == followup_event_id("evt_1", 1)
    assert ledger["Attributes"]["MessageGroupId"] == "evt_1"
    # AND the store paid one claim, the completion with its follow-ups, and the mark: nothing is left to send
    assert calls.operations == ["TransactWriteItems", "BatchWriteItem", "BatchWriteItem"]
    item = stored_item(dynamodb)
    assert item["status"]["S"] == "COMPLETED"
    assert "followups" not in item


def test_a_followup_goes_in_its_parents_trace(aws):
    # GIVEN SendMessageBatch keeping system attributes, as SQS does (moto drops them: the local server's mend)
    keep_batch_system_attributes()
    _, client, urls = aws
    trace = "Root=1-6942a1b0-5f3c7e0a9b1d2c3e4f506172;Parent=53995c3f42cd8ad8;Sampled=1"

    # WHEN a record of a traced producer emits to a standard and a FIFO queue
    record = sqs.record(sqs.body("hello", {"name": "x"}, event_id="evt_1"), trace_header=trace)
    response = subject(urls, client, emit_to("billing", "ledger")).handle(sqs.event(record), FakeContext())

    # THEN each follow-up carries the record's trace header
    assert failed_ids(response) == []
    [billing], [ledger] = received(client, urls["billing"]), received(client, urls["ledger"])
    assert billing["Attributes"]["AWSTraceHeader"] == ledger["Attributes"]["AWSTraceHeader"] == trace


def test_a_completion_stored_with_unsent_followups_is_a_duplicate_that_sends_them(aws):
    # GIVEN a completion written with its follow-ups, and a kill before they were sent
    dynamodb, client, urls = aws
    event = HelloEvent(event_id="evt_1", event_type="hello", payload={"name": "x"})
    followup = FollowUp("billing", followup_event_id("evt_1", 0), '{"event_type":"hello"}', "evt_1")
    store = DynamoDBIdempotency(lambda: DynamoDBStore(TABLE, 86_400))
    assert store.settle([event], [], Deadline(lambda: 30_000, 0), followups={"evt_1": [followup]}) == 0
    assert "followups" in stored_item(dynamodb)
    ran: list[str] = []

    # WHEN the record is delivered again
    response = subject(urls, client, lambda e, r: ran.append(e.event_id)).handle(
        sqs.event(sqs.record(event.model_dump_json(), receive_count=2)), FakeContext()
    )

    # THEN it is acknowledged without running its handler, after sending what was left, once
    assert failed_ids(response) == []
    assert ran == []
    assert [m["Body"] for m in received(client, urls["billing"])] == ['{"event_type":"hello"}']
    assert "followups" not in stored_item(dynamodb)


def test_a_queue_that_refuses_leaves_the_followup_stored_and_the_record_listed(aws):
    dynamodb, client, urls = aws
    gone = {**urls, "billing": urls["billing"].replace("billing", "deleted-queue")}

    response = subject(gone, client, emit_to("billing")).handle(
        sqs.event(sqs.record(sqs.body("hello", {"name": "x"}, event_id="evt_1"), message_id="m1")), FakeContext()
    )

    assert failed_ids(response) == ["m1"]
    item = stored_item(dynamodb)
    assert item["status"]["S"] == "COMPLETED"
    assert [entry["to"] for entry in json.loads(item["followups"]["S"])] == ["billing"]


def test_many_large_followups_go_in_requests_sqs_accepts(aws):
    # GIVEN 25 follow-ups of 60 KB to one queue: more than 10 entries and 256 KiB to a request
    _dynamodb, client, urls = aws
    strict = StrictSqs(client)
    sender = SqsFollowUpSender(urls, client_factory=lambda _endpoint: strict)  # type: ignore[arg-type,return-value]
    followups = [
        FollowUp("billing", followup_event_id("evt_1", n), '{"pad":"' + "x" * 60_000 + '"}', "evt_1") for n in range(25)
    ]

    # WHEN they are sent
    results = sender.send(followups, Deadline(lambda: 30_000, 0))

    # THEN SQS (as checked) accepted every one
    assert results == [None] * 25
    assert strict.refused == []
    count = client.get_queue_attributes(QueueUrl=urls["billing"], AttributeNames=["ApproximateNumberOfMessages"])
    assert count["Attributes"]["ApproximateNumberOfMessages"] == "25"


def test_a_fifo_destination_deduplicates_a_repeated_send(aws):
    _dynamodb, client, urls = aws
    sender = SqsFollowUpSender(urls, client_factory=lambda _endpoint: StrictSqs(client))  # type: ignore[arg-type,return-value]
    followup = FollowUp("ledger", followup_event_id("evt_1", 0), '{"event_type":"hello"}', "evt_1")

    # WHEN the same follow-up is sent twice (a crash between the send and its mark)
    assert sender.send([followup], Deadline(lambda: 30_000, 0)) == [None]
    assert sender.send([followup], Deadline(lambda: 30_000, 0)) == [None]

    # THEN the FIFO queue holds it once
    assert len(received(client, urls["ledger"])) == 1


def test_records_that_emit_nothing_pay_the_store_what_they_paid_without_destinations(aws):
    # GIVEN a consumer with destinations declared whose handlers emit nothing, and a batch of 10 new events
    _dynamodb, client, urls = aws
    calls = Calls()
    batch = sqs.event(*(sqs.record(sqs.body("hello", {"name": "x"}, event_id=f"evt_{n}")) for n in range(10)))

    # WHEN it is handled
    response = subject(urls, client, emit_to(), calls).handle(batch, FakeContext())

    # THEN one claim and at most two group-commit writes, as without destinations; nothing was sent
    assert failed_ids(response) == []
    assert calls.operations[0] == "TransactWriteItems"
    assert set(calls.operations[1:]) == {"BatchWriteItem"} and len(calls.operations) <= 3
    assert received(client, urls["billing"]) == []
