"""Exactly-once effects per event_id, with the Powertools persistence layer on moto's DynamoDB."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import boto3
import pytest
from moto import mock_aws

from sqs_consumer.idempotency import PowertoolsIdempotency, dynamodb_persistence
from sqs_consumer.models import HelloEvent
from sqs_consumer.processing import BatchConsumer
from sqs_consumer.registry import EventRegistry, RecordInfo, Route
from tests.conftest import failed_ids
from tests.support import sqs_events as sqs
from tests.support.fakes import FakeContext, FakeQuarantine

TABLE = "consumer-idempotency"
TTL = 18 * 86_400


@pytest.fixture
def dynamodb(aws_credentials):
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


class Effects:
    """A handler whose side effects are counted per event_id."""

    def __init__(self, *, fail_first: bool = False, wait: float = 0.0) -> None:
        self.count: Counter[str] = Counter()
        self._fail_first = fail_first
        self._wait = wait

    def sync(self, event: HelloEvent, record: RecordInfo) -> None:
        self.count[event.event_id] += 1
        if self._fail_first and self.count[event.event_id] == 1:
            raise RuntimeError("transient")

    async def slow(self, event: HelloEvent, record: RecordInfo) -> None:
        await asyncio.sleep(self._wait)
        self.count[event.event_id] += 1


def consumer(handler) -> BatchConsumer:
    idempotency = PowertoolsIdempotency(lambda: dynamodb_persistence(TABLE, TTL))
    return BatchConsumer(EventRegistry([Route(HelloEvent, handler)]), FakeQuarantine(), idempotency=idempotency)


def copy_of(event_id: str) -> dict:
    """A new SQS message (new message id) carrying the same business event."""
    return sqs.record(sqs.body("hello", {"name": "x"}, event_id=event_id))


def test_duplicate_of_processed_event_is_acknowledged_without_running_again(dynamodb, logs):
    effects = Effects()
    subject = consumer(effects.sync)

    first = subject.handle(sqs.event(copy_of("evt_1")), FakeContext())
    second = subject.handle(sqs.event(copy_of("evt_1"), copy_of("evt_2")), FakeContext())

    assert failed_ids(first) == failed_ids(second) == []
    assert effects.count == {"evt_1": 1, "evt_2": 1}
    assert any(line["message"].startswith("Duplicate acknowledged") for line in logs.lines)


def test_duplicate_in_the_same_batch_runs_once(dynamodb):
    effects = Effects()
    response = consumer(effects.sync).handle(sqs.event(copy_of("evt_1"), copy_of("evt_1")), FakeContext())
    assert failed_ids(response) == []
    assert effects.count == {"evt_1": 1}


def test_copies_in_one_batch_run_once_and_follow_the_first_ones_outcome(dynamodb):
    # GIVEN two copies of one event in a batch, handled by an async handler
    effects = Effects(wait=0.05)
    first, copy = copy_of("evt_1"), copy_of("evt_1")

    # WHEN the batch is handled
    response = consumer(effects.slow).handle(sqs.event(first, copy), FakeContext())

    # THEN the effect happened once and the copy is acknowledged with it
    assert failed_ids(response) == []
    assert effects.count == {"evt_1": 1}


def test_copy_of_a_failed_event_in_the_same_batch_is_retried_not_dropped(dynamodb):
    effects = Effects(fail_first=True)
    first, copy = copy_of("evt_1"), copy_of("evt_1")

    response = consumer(effects.sync).handle(sqs.event(first, copy), FakeContext())

    assert failed_ids(response) == [first["messageId"], copy["messageId"]]
    assert effects.count == {"evt_1": 1}


def test_failed_attempt_releases_the_event_so_the_retry_runs(dynamodb):
    effects = Effects(fail_first=True)
    subject = consumer(effects.sync)
    message = copy_of("evt_1")

    assert failed_ids(subject.handle(sqs.event(message), FakeContext())) == [message["messageId"]]
    assert failed_ids(subject.handle(sqs.event(message), FakeContext())) == []
    assert effects.count == {"evt_1": 2}


def test_records_expire_after_ttl_and_in_progress_with_the_function_timeout(dynamodb):
    # GIVEN an async handler, so the in-progress record can be read while it runs
    seen: dict = {}

    async def inspect_store(event: HelloEvent, record: RecordInfo) -> None:
        [item] = dynamodb.scan(TableName=TABLE)["Items"]
        seen.update(item)

    before = time.time()
    consumer(inspect_store).handle(sqs.event(copy_of("evt_1")), FakeContext(remaining_ms=[12_000]))

    assert seen["status"]["S"] == "INPROGRESS"
    in_progress_ms = int(seen["in_progress_expiration"]["N"])
    assert before * 1000 + 11_000 <= in_progress_ms <= time.time() * 1000 + 12_000
    [completed] = dynamodb.scan(TableName=TABLE)["Items"]
    assert completed["status"]["S"] == "COMPLETED"
    assert before + TTL - 5 <= int(completed["expiration"]["N"]) <= time.time() + TTL + 5


def test_unreachable_store_makes_the_record_retryable(aws_credentials):
    # GIVEN a table that does not exist (moto, nothing created)
    with mock_aws():
        effects = Effects()
        message = copy_of("evt_1")
        response = consumer(effects.sync).handle(sqs.event(message), FakeContext())
    assert failed_ids(response) == [message["messageId"]]
    assert effects.count == {}
