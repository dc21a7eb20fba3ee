"""Batches of 1,000 and 10,000 with idempotency on, against the local pipeline's store: moto_server
with its DynamoDB writes isolated, where the claims' transactions and the completions' batch writes
run in parallel (moto's in-process DynamoDB is not safe for that)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from local.sqs_server import SqsServer, dynamodb_client
from sqs_consumer.idempotency.dynamodb import DynamoDBIdempotency, DynamoDBStore
from sqs_consumer.models import HelloEvent
from sqs_consumer.models.record import RecordInfo
from sqs_consumer.pipeline import BatchConsumer
from sqs_consumer.registry import EventRegistry, Route
from sqs_consumer.testing import events as sqs
from sqs_consumer.testing.fakes import FakeContext, InMemoryDLQ
from tests.conftest import failed_ids

pytestmark = pytest.mark.e2e
TABLE = "scale-idempotency"


@pytest.fixture(scope="module")
def dynamodb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    server = SqsServer(tmp_path_factory.mktemp("scale") / "moto.log")
    try:
        client = dynamodb_client(server.endpoint_url)
        client.create_table(TableName=TABLE, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                            BillingMode="PAY_PER_REQUEST")  # fmt: skip
        yield client
    finally:
        server.stop()


@pytest.mark.parametrize("size", [1_000, 10_000])
def test_every_event_of_a_large_mixed_batch_runs_once(dynamodb: Any, size: int):
    # GIVEN events already processed, and a batch of new events mixed with copies within the batch,
    # redeliveries of the processed ones and reuses of their ids with another payload
    effects: Counter[str] = Counter()

    def handle(event: HelloEvent, record: RecordInfo) -> None:
        effects[event.event_id] += 1

    quarantine = InMemoryDLQ()
    store = DynamoDBIdempotency(lambda: DynamoDBStore(TABLE, 86_400, client=dynamodb))
    subject = BatchConsumer(EventRegistry([Route(HelloEvent, handle)]), quarantine, idempotency=store)
    context = FakeContext(remaining_ms=900_000)
    rng = random.Random(size)
    stored = [f"stored-{size}-{n}" for n in range(size // 20)]
    subject.handle(sqs.event(*(sqs.record(sqs.body("hello", {"name": "a"}, event_id=e)) for e in stored)), context)
    records, reused = [], []
    new = [f"new-{size}-{n}" for n in range(size - 2 * len(stored))]
    for event_id in new:
        records.append(sqs.record(sqs.body("hello", {"name": "a"}, event_id=event_id)))
    for event_id in rng.sample(new, len(stored) // 2):  # copies within the batch
        records.append(sqs.record(sqs.body("hello", {"name": "a"}, event_id=event_id)))
    for index, event_id in enumerate(stored):  # redeliveries, and reuses with another payload
        name = "b" if index % 4 == 0 else "a"
        message = sqs.record(sqs.body("hello", {"name": name}, event_id=event_id))
        records.append(message)
        if name == "b":
            reused.append(message["messageId"])
    rng.shuffle(records)
    effects.clear()

    # WHEN the batch is handled
    response = subject.handle(sqs.event(*records), context)

    # THEN each new event ran once, no processed one ran again, only the reuses were quarantined
    assert failed_ids(response) == []
    assert effects == Counter(new)
    assert sorted(quarantine.message_ids) == sorted(reused)
    assert {message.kind for message in quarantine.sent} == {"reused_event_id"}
