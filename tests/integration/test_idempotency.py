"""Exactly-once effects per event_id, in Powertools' table format, on moto's DynamoDB.

Records written by Powertools' own persistence layer (configured as the store is) are read by
the consumer, and the consumer's records by Powertools: the format is checked, not assumed.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig
from aws_lambda_powertools.utilities.idempotency.base import _prepare_data
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyItemAlreadyExistsError
from moto import mock_aws

from sqs_consumer.budget import Deadline
from sqs_consumer.idempotency.dynamodb import DynamoDBIdempotency, DynamoDBStore
from sqs_consumer.idempotency.fingerprint import (
    FINGERPRINT_JMESPATH,
    event_data,
    fingerprint,
    powertools_hash,
    same_event,
)
from sqs_consumer.idempotency.port import ClaimState, Held
from sqs_consumer.idempotency.records import KEY_NAMESPACE
from sqs_consumer.models import HelloEvent
from sqs_consumer.models.record import RecordInfo
from sqs_consumer.pipeline import BatchConsumer
from sqs_consumer.registry import EventRegistry, Route
from sqs_consumer.retry import Backoff
from sqs_consumer.routes import REGISTRY
from sqs_consumer.testing import events as sqs
from sqs_consumer.testing.fakes import FakeClock, FakeContext, InMemoryDLQ
from tests.conftest import failed_ids

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


def powertools_layer() -> DynamoDBPersistenceLayer:
    """Powertools' own persistence layer, configured as the consumer's store is."""
    layer = DynamoDBPersistenceLayer(table_name=TABLE)
    layer.configure(
        IdempotencyConfig(
            event_key_jmespath="event_id", payload_validation_jmespath=FINGERPRINT_JMESPATH, expires_after_seconds=TTL
        ),
        function_name=KEY_NAMESPACE,
    )
    return layer


def consumer(handler) -> BatchConsumer:
    idempotency = DynamoDBIdempotency(lambda: DynamoDBStore(TABLE, TTL))
    return BatchConsumer(EventRegistry([Route(HelloEvent, handler)]), InMemoryDLQ(), idempotency=idempotency)


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
    consumer(inspect_store).handle(sqs.event(copy_of("evt_1")), FakeContext(remaining_ms=12_000))

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


class StoreCalls:
    """Counts the DynamoDB calls of the persistence layer's client, by operation."""

    def __init__(self) -> None:
        self.operations: list[str] = []

    def __call__(self, model, **kwargs) -> None:
        self.operations.append(model.name)


def counted_consumer(handler, calls: StoreCalls, **kwargs) -> BatchConsumer:
    def persistence():
        layer = DynamoDBStore(TABLE, TTL)
        layer.client.meta.events.register("before-call.dynamodb", calls)
        return layer

    registry = EventRegistry([Route(HelloEvent, handler)])
    return BatchConsumer(registry, InMemoryDLQ(), idempotency=DynamoDBIdempotency(persistence), **kwargs)


@pytest.mark.parametrize("size", [10, 100])
def test_a_batch_pays_the_store_a_few_calls_not_two_per_record(dynamodb, size):
    # GIVEN a batch of new events
    calls = StoreCalls()
    effects = Effects()
    event = sqs.event(*(copy_of(f"evt_{i}") for i in range(size)))

    # WHEN it is handled
    response = counted_consumer(effects.sync, calls).handle(event, FakeContext())

    # THEN every event ran once, claimed in one transaction per 100 and completed 25 to a request, in
    # at most two rounds of group commit (the first success may be written alone)
    assert failed_ids(response) == []
    assert len(effects.count) == size
    transactions = -(-size // 100)
    assert calls.operations[:transactions] == ["TransactWriteItems"] * transactions
    assert set(calls.operations[transactions:]) == {"BatchWriteItem"}
    assert -(-size // 25) <= calls.operations.count("BatchWriteItem") <= -(-size // 25) + 1
    statuses = {item["status"]["S"] for item in dynamodb.scan(TableName=TABLE)["Items"]}
    assert statuses == {"COMPLETED"}


def test_a_batch_with_processed_and_new_events_runs_only_the_new_ones(dynamodb):
    effects = Effects()
    subject = consumer(effects.sync)
    subject.handle(sqs.event(copy_of("evt_1"), copy_of("evt_2")), FakeContext())

    response = subject.handle(sqs.event(*(copy_of(f"evt_{i}") for i in range(1, 6))), FakeContext())

    assert failed_ids(response) == []
    assert effects.count == {f"evt_{i}": 1 for i in range(1, 6)}


def quarantining_consumer(quarantine: InMemoryDLQ) -> BatchConsumer:
    idempotency = DynamoDBIdempotency(lambda: DynamoDBStore(TABLE, TTL))
    return BatchConsumer(REGISTRY, quarantine, idempotency=idempotency)


@pytest.mark.parametrize(
    "second",
    [
        pytest.param(sqs.body("document.processed", {"document_id": "d-1"}, event_id="42"), id="another-type"),
        pytest.param(sqs.body("hello", {"name": "someone else"}, event_id="42"), id="another-payload"),
    ],
)
def test_an_event_id_reused_for_another_event_is_quarantined_never_acknowledged(dynamodb, second):
    # GIVEN a hello with id 42 already processed
    quarantine = InMemoryDLQ()
    subject = quarantining_consumer(quarantine)
    subject.handle(sqs.event(sqs.record(sqs.body("hello", {"name": "x"}, event_id="42"))), FakeContext())

    # WHEN another event arrives with the same id
    record = sqs.record(second)
    response = subject.handle(sqs.event(record), FakeContext())

    # THEN it is quarantined with the reason, not acknowledged as a duplicate
    assert failed_ids(response) == []
    [sent] = quarantine.sent
    assert sent.source_message_id == record["messageId"]
    assert sent.kind == "reused_event_id"
    assert sent.reason.startswith("event_id reused with a different payload")


def test_an_event_id_reused_within_one_batch_is_quarantined(dynamodb):
    quarantine = InMemoryDLQ()
    first = sqs.record(sqs.body("hello", {"name": "x"}, event_id="42"))
    other = sqs.record(sqs.body("document.processed", {"document_id": "d"}, event_id="42"))

    response = quarantining_consumer(quarantine).handle(sqs.event(first, other), FakeContext())

    assert failed_ids(response) == []
    assert quarantine.message_ids == [other["messageId"]]
    assert quarantine.sent[0].kind == "reused_event_id"


def test_a_record_stored_before_fingerprints_is_still_a_duplicate(dynamodb):
    # GIVEN a completed record as the previous release wrote it: no fingerprint
    effects = Effects()
    layer = powertools_layer()
    key = layer._get_hashed_idempotency_key({"event_id": "evt_old"})
    dynamodb.put_item(TableName=TABLE, Item={
        "id": {"S": key}, "expiration": {"N": str(int(time.time()) + 3600)},
        "status": {"S": "COMPLETED"}, "data": {"S": "{}"}})  # fmt: skip

    response = consumer(effects.sync).handle(sqs.event(copy_of("evt_old")), FakeContext())

    assert failed_ids(response) == []
    assert effects.count == {}


@dataclass
class RecordingVisibility:
    changes: list = field(default_factory=list)

    def change(self, changes, deadline) -> None:
        self.changes.extend(changes)


def test_a_copy_in_progress_elsewhere_waits_for_that_record_to_expire(dynamodb):
    # GIVEN the event held in progress by another execution for 90 more seconds
    layer = powertools_layer()
    message = copy_of("evt_1")
    layer.save_inprogress(data=event_data(REGISTRY.parse(message["body"])), remaining_time_in_millis=90_000)
    visibility = RecordingVisibility()
    effects = Effects()
    subject = counted_consumer(effects.sync, StoreCalls(), backoff=Backoff(1, 8), visibility=visibility,
                               max_receive_count=4)  # fmt: skip

    # WHEN a copy arrives
    response = subject.handle(sqs.event(message), FakeContext())

    # THEN it is retried no sooner than the in-progress record expires, whatever its backoff
    assert failed_ids(response) == [message["messageId"]]
    [change] = visibility.changes
    assert 90 <= change.seconds <= 92
    assert effects.count == {}


class RealClock:
    """A Lambda context whose remaining time runs down with the wall clock."""

    def __init__(self, remaining_ms: int) -> None:
        self._end = time.monotonic() + remaining_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return int((self._end - time.monotonic()) * 1000)


def test_a_store_that_does_not_answer_makes_records_retryable_within_the_reserve(dynamodb):
    # GIVEN a store whose calls hang until released
    released = threading.Event()

    def hang(**kwargs) -> None:
        released.wait(10)

    def persistence():
        layer = DynamoDBStore(TABLE, TTL)
        layer.client.meta.events.register("before-call.dynamodb", hang)
        return layer

    effects = Effects()
    subject = BatchConsumer(EventRegistry([Route(HelloEvent, effects.sync)]), InMemoryDLQ(), time_reserve_ms=1_000,
                            idempotency=DynamoDBIdempotency(persistence))  # fmt: skip
    message = copy_of("evt_1")
    try:
        # WHEN a batch arrives with 1.5 s left
        response = subject.handle(sqs.event(message), RealClock(1_500))
        returned_while_hanging = not released.is_set()
    finally:
        released.set()

    # THEN the function returned while the call still hung: the record is listed, its handler never ran
    assert returned_while_hanging
    assert failed_ids(response) == [message["messageId"]]
    assert effects.count == {}


def test_the_store_client_has_short_timeouts_and_standard_retries(aws_credentials):
    config: Any = DynamoDBStore(TABLE, TTL).client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (1, 2)
    assert config.retries["mode"] == "standard"
    assert config.retries["total_max_attempts"] <= 3


def test_keys_and_fingerprints_are_those_powertools_computes_from_the_event_model(dynamodb):
    # GIVEN the data Powertools' idempotency derives from a Pydantic event (its own _prepare_data)
    store, layer = DynamoDBStore(TABLE, TTL), powertools_layer()
    for body in (sqs.body("hello", {"name": "x"}, event_id="evt_1"), sqs.body("hello", {"name": "é"}, event_id="évt")):
        event = REGISTRY.parse(body)
        data = _prepare_data(event)

        # THEN the store's key and fingerprint are Powertools' own for that data
        key = layer._get_hashed_idempotency_key(data)
        assert key is not None
        assert store.key(event.event_id) == layer._get_key(key)
        assert fingerprint(event) == layer._get_hashed_payload(data)


def test_defaults_spelled_out_or_left_out_give_one_fingerprint():
    # GIVEN the same event, once with its payload's defaults left out and once written in full
    short = REGISTRY.parse(sqs.body("hello", {"name": "x"}, event_id="e"))
    full = REGISTRY.parse(sqs.body("hello", {"name": "x", "simulate": None, "delay_ms": 0}, event_id="e"))
    other = REGISTRY.parse(sqs.body("hello", {"name": "x", "delay_ms": 5}, event_id="e"))

    # THEN both have one fingerprint, another payload has another, and a fingerprint the earlier
    # release stored (of the fields as sent) still matches the event, however it is written now
    assert fingerprint(short) == fingerprint(full) != fingerprint(other)
    legacy = powertools_hash(["hello", {"name": "x"}])
    assert same_event(legacy, short)
    assert same_event(legacy, full)
    assert not same_event(legacy, other)


def test_an_event_resent_with_its_defaults_spelled_out_is_a_duplicate_not_a_reuse(dynamodb):
    # GIVEN an event processed as a producer first sent it
    quarantine, effects = InMemoryDLQ(), Effects()
    subject = BatchConsumer(EventRegistry([Route(HelloEvent, effects.sync)]), quarantine,
                            idempotency=DynamoDBIdempotency(lambda: DynamoDBStore(TABLE, TTL)))  # fmt: skip
    subject.handle(sqs.event(sqs.record(sqs.body("hello", {"name": "x"}, event_id="e1"))), FakeContext())

    # WHEN the producer re-sends it with the payload's defaults written out
    resent = sqs.record(sqs.body("hello", {"name": "x", "delay_ms": 0}, event_id="e1"))
    response = subject.handle(sqs.event(resent), FakeContext())

    # THEN it is acknowledged as a duplicate: nothing quarantined, the handler ran once
    assert failed_ids(response) == []
    assert quarantine.sent == []
    assert effects.count == {"e1": 1}


def test_an_event_completed_by_powertools_is_a_duplicate_and_ours_is_one_for_powertools(dynamodb):
    # GIVEN an event Powertools' own utility completed, and one the consumer completed
    layer, effects = powertools_layer(), Effects()
    by_powertools, by_us = copy_of("evt_pt"), copy_of("evt_us")
    data = event_data(REGISTRY.parse(by_powertools["body"]))
    layer.save_inprogress(data=data, remaining_time_in_millis=60_000)
    layer.save_success(data=data, result={})
    consumer(effects.sync).handle(sqs.event(by_us), FakeContext())

    # WHEN copies of both arrive
    response = consumer(effects.sync).handle(sqs.event(copy_of("evt_pt"), copy_of("evt_us")), FakeContext())

    # THEN neither runs again, and Powertools sees the consumer's record as completed
    assert failed_ids(response) == []
    assert effects.count == {"evt_us": 1}
    with pytest.raises(IdempotencyItemAlreadyExistsError):
        layer.save_inprogress(data=event_data(REGISTRY.parse(by_us["body"])), remaining_time_in_millis=60_000)
    record = layer.get_record(event_data(REGISTRY.parse(by_us["body"])))
    assert record is not None
    assert record.status == "COMPLETED"


def test_a_release_deletes_only_this_executions_own_claim(dynamodb):
    # GIVEN an event this execution claimed, whose claim then expired and another execution took
    store = DynamoDBIdempotency(lambda: DynamoDBStore(TABLE, TTL))
    event = REGISTRY.parse(sqs.body("hello", {"name": "x"}, event_id="evt_taken"))
    deadline = FakeContext().get_remaining_time_in_millis
    [ours] = store.claim([event], 60_000, Deadline(deadline, 0))
    layer = powertools_layer()
    dynamodb.delete_item(TableName=TABLE, Key=DynamoDBStore(TABLE, TTL).key(event.event_id))
    layer.save_inprogress(data=event_data(event), remaining_time_in_millis=90_000)

    # WHEN this execution's release arrives late (cut off by its deadline, run after a thaw)
    store.settle([], [Held(event, ours.token)], Deadline(deadline, 0))

    # THEN the other execution's claim is still there; and its own release of its own claim works
    assert dynamodb.get_item(TableName=TABLE, Key=DynamoDBStore(TABLE, TTL).key(event.event_id)).get("Item")
    [claim] = DynamoDBIdempotency(lambda: DynamoDBStore(TABLE, TTL)).claim(
        [REGISTRY.parse(sqs.body("hello", {"name": "y"}, event_id="evt_mine"))], 60_000, Deadline(deadline, 0)
    )
    mine = REGISTRY.parse(sqs.body("hello", {"name": "y"}, event_id="evt_mine"))
    store.settle([], [Held(mine, claim.token)], Deadline(deadline, 0))
    assert "Item" not in dynamodb.get_item(TableName=TABLE, Key=DynamoDBStore(TABLE, TTL).key("evt_mine"))


def test_a_completed_record_is_never_deleted_by_a_late_release(dynamodb):
    # GIVEN an event this execution claimed, that another execution then completed
    store = DynamoDBIdempotency(lambda: DynamoDBStore(TABLE, TTL))
    event = REGISTRY.parse(sqs.body("hello", {"name": "x"}, event_id="evt_done"))
    remaining = FakeContext().get_remaining_time_in_millis
    [ours] = store.claim([event], 60_000, Deadline(remaining, 0))
    store.settle([event], [], Deadline(remaining, 0))

    # WHEN the stale release runs
    store.settle([], [Held(event, ours.token)], Deadline(remaining, 0))

    # THEN the event is still a duplicate
    [again] = store.claim([event], 60_000, Deadline(remaining, 0))
    assert again.state is ClaimState.DUPLICATE


class ContendedClient:
    """A DynamoDB client whose transactions meet a conflicting one ``conflicts`` times, then succeed."""

    def __init__(self, conflicts: int) -> None:
        self.conflicts = conflicts
        self.calls = 0

    def transact_write_items(self, TransactItems: list[Any]) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        self.calls += 1
        if self.calls <= self.conflicts:
            response: Any = {
                "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                "CancellationReasons": [{"Code": "TransactionConflict"} for _ in TransactItems],
            }
            raise ClientError(response, "TransactWriteItems")
        return {}


def test_conflicting_claims_back_off_with_jitter_then_succeed(aws_credentials):
    # GIVEN a table whose first two transactions meet conflicting ones
    client, pauses = ContendedClient(conflicts=2), list[float]()
    store = DynamoDBIdempotency(lambda: DynamoDBStore(TABLE, TTL, client=client), sleep=pauses.append)  # type: ignore[arg-type]
    events = [REGISTRY.parse(sqs.body("hello", event_id=f"e{n}")) for n in range(3)]

    # WHEN the events are claimed with time to spare
    claims = store.claim(events, 60_000, Deadline(lambda: 60_000, 0))

    # THEN the claim went again after two growing, jittered pauses, and all are acquired
    assert [claim.state for claim in claims] == [ClaimState.ACQUIRED] * 3
    assert client.calls == 3
    assert len(pauses) == 2
    assert all(0 <= pause <= 0.025 * 2**attempt for attempt, pause in enumerate(pauses))


def test_conflicting_claims_give_up_within_the_deadline(aws_credentials):
    # GIVEN a table that always conflicts, and 20 ms left, which the pauses use up
    client, pauses, left_ms = ContendedClient(conflicts=100), [], [20.0]

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        left_ms[0] -= seconds * 1000

    store = DynamoDBIdempotency(lambda: DynamoDBStore(TABLE, TTL, client=client), sleep=sleep)  # type: ignore[arg-type]

    # WHEN an event is claimed
    [claim] = store.claim([REGISTRY.parse(sqs.body("hello"))], 60_000, Deadline(lambda: int(left_ms[0]), 0))

    # THEN it is retryable, and no pause ran past the deadline
    assert claim.state is ClaimState.UNAVAILABLE
    assert sum(pauses) < 0.02


def test_unstarted_records_release_their_claims_together(dynamodb):
    # GIVEN 100 new events whose first handler runs into the time reserve: the others may not start
    # (100: moto's in-process DynamoDB is not safe for parallel transactions; tests/e2e has more)
    calls, effects, clock = StoreCalls(), Effects(), FakeClock()

    def slow(event: HelloEvent, record: RecordInfo) -> None:
        clock.advance(2.0)
        effects.sync(event, record)

    event = sqs.event(*(copy_of(f"evt_late_{i}") for i in range(100)))

    # WHEN the batch is handled
    subject = counted_consumer(slow, calls, time_reserve_ms=5_000, timer=clock)
    response = subject.handle(event, FakeContext(6_000, clock=clock))

    # THEN the others are listed unstarted, and their 99 claims were released in one transaction, not
    # one call each (as the claims were made)
    assert len(failed_ids(response)) == 99
    assert effects.count == {"evt_late_0": 1}
    assert calls.operations.count("TransactWriteItems") == 1 + 1
    assert calls.operations.count("BatchWriteItem") == 1
    assert [item["status"]["S"] for item in dynamodb.scan(TableName=TABLE)["Items"]] == ["COMPLETED"]


def test_a_claim_refused_for_a_reason_no_retry_fixes_says_why_at_once(aws_credentials):
    # GIVEN a table whose transactions are cancelled for a validation error
    class Refusing(ContendedClient):
        def transact_write_items(self, TransactItems: list[Any]) -> dict[str, Any]:
            from botocore.exceptions import ClientError

            self.calls += 1
            response: Any = {
                "Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
                "CancellationReasons": [{"Code": "ValidationError"} for _ in TransactItems],
            }
            raise ClientError(response, "TransactWriteItems")

    client = Refusing(conflicts=0)
    store = DynamoDBIdempotency(lambda: DynamoDBStore(TABLE, TTL, client=client))  # type: ignore[arg-type]

    # WHEN an event is claimed
    [claim] = store.claim([REGISTRY.parse(sqs.body("hello"))], 60_000, Deadline(lambda: 60_000, 0))

    # THEN it was tried once, and the record is retryable with the reason DynamoDB gave
    assert client.calls == 1
    assert claim.state is ClaimState.UNAVAILABLE
    assert "ValidationError" in str(claim.error)


class ContendedReleases(ContendedClient):
    """A table whose transactions meet contention ``conflicts`` times (cancelled for a conflicting
    transaction, or refused whole with ``code``), then succeed; it records what each one deleted."""

    def __init__(self, conflicts: int, code: str = "TransactionCanceledException") -> None:
        super().__init__(conflicts)
        self.code = code
        self.deleted: list[list[str]] = []

    def transact_write_items(self, TransactItems: list[Any]) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        if self.code != "TransactionCanceledException" and self.calls < self.conflicts:
            self.calls += 1
            raise ClientError({"Error": {"Code": self.code, "Message": "contended"}}, "TransactWriteItems")
        answer = super().transact_write_items(TransactItems)
        self.deleted.append([item["Delete"]["Key"]["id"]["S"] for item in TransactItems])
        return answer


@pytest.mark.parametrize(
    "code", ["TransactionCanceledException", "TransactionConflictException", "ThrottlingException"]
)
def test_releases_refused_for_contention_go_again_with_jitter(aws_credentials, code):
    # GIVEN two claims to release, and a table whose first two transactions meet contention
    client, pauses = ContendedReleases(conflicts=2, code=code), list[float]()
    store = DynamoDBIdempotency(lambda: DynamoDBStore(TABLE, TTL, client=client), sleep=pauses.append)  # type: ignore[arg-type]
    held = [Held(REGISTRY.parse(sqs.body("hello", event_id=f"e{n}")), 1_000 + n) for n in range(2)]

    # WHEN they are released with time to spare
    store.settle([], held, Deadline(lambda: 60_000, 0))

    # THEN the release went again after two growing, jittered pauses, and deleted both
    assert client.calls == 3
    assert len(pauses) == 2
    assert all(0 <= pause <= 0.025 * 2**attempt for attempt, pause in enumerate(pauses))
    assert [len(keys) for keys in client.deleted] == [2]


def test_releases_meeting_contention_give_up_within_the_deadline(aws_credentials):
    # GIVEN a table that always conflicts, and 20 ms left, which the pauses use up
    client, pauses, left_ms = ContendedReleases(conflicts=100), [], [20.0]

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        left_ms[0] -= seconds * 1000

    store = DynamoDBIdempotency(lambda: DynamoDBStore(TABLE, TTL, client=client), sleep=sleep)  # type: ignore[arg-type]
    held = [Held(REGISTRY.parse(sqs.body("hello")), 1_000)]

    # WHEN a claim is released
    store.settle([], held, Deadline(lambda: int(left_ms[0]), 0))

    # THEN no pause ran past the deadline, and nothing was deleted (the record expires instead)
    assert sum(pauses) < 0.02
    assert client.deleted == []


def test_a_v1_resend_of_a_processed_v2_event_is_a_duplicate_in_the_table(dynamodb):
    # GIVEN "greeting" at version 2 with an upcaster from 1, and the v2 event processed through the DynamoDB store
    from tests.unit.test_event_versions import GreetingV2, Seen, greeting, v1_to_v2

    seen = Seen()
    registry = EventRegistry([Route(GreetingV2, seen, upcasters={1: v1_to_v2})])
    store = DynamoDBIdempotency(lambda: DynamoDBStore(TABLE, TTL))
    v2 = greeting("evt_1", 2, first_name="Ada", last_name="Lovelace")
    assert failed_ids(BatchConsumer(registry, InMemoryDLQ(), idempotency=store).handle(
        sqs.event(sqs.record(json.dumps(v2))), FakeContext())) == []  # fmt: skip

    # WHEN a producer still on version 1 sends the same event, and another with the id reused
    dlq = InMemoryDLQ()
    again = sqs.event(sqs.record(json.dumps(greeting("evt_1"))), sqs.record(json.dumps(greeting("evt_1", name="Bo B"))))
    response = BatchConsumer(registry, dlq, idempotency=store).handle(again, FakeContext())

    # THEN the v1 copy is acknowledged as a duplicate (the table holds the upcast event's fingerprint), the
    # other quarantined as a reused event_id, and the handler ran once in all
    assert failed_ids(response) == []
    assert [message.kind for message in dlq.sent] == ["reused_event_id"]
    assert len(seen.events) == 1


def test_with_its_breaker_closed_a_dependent_batch_of_10_costs_at_most_4_store_round_trips(dynamodb):
    # GIVEN a route depending on orders-api, its breaker closed, state and claims in the same table
    from sqs_consumer.dependencies.board import BoardWiring, BreakerBoard
    from sqs_consumer.dependencies.store import DynamoDBBreakerStore
    from sqs_consumer.models import OrderPlacedEvent
    from sqs_consumer.pipeline.breakers import BreakerStage

    calls, ran = StoreCalls(), []

    def persistence():
        layer = DynamoDBStore(TABLE, TTL)
        layer.client.meta.events.register("before-call.dynamodb", calls)
        return layer

    def breakers():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.meta.events.register("before-call.dynamodb", calls)
        return DynamoDBBreakerStore(TABLE, client)

    registry = EventRegistry([Route(OrderPlacedEvent, lambda event, info: ran.append(event.event_id),
                                    dependencies=["orders-api"])])  # fmt: skip
    consumer = BatchConsumer(registry, InMemoryDLQ(), idempotency=DynamoDBIdempotency(persistence),
                             breakers=BreakerStage(BreakerBoard(BoardWiring(breakers))))  # fmt: skip
    order = {"order_id": "o", "customer_id": "c", "lines": [{"sku": "s", "quantity": 1}]}
    event = sqs.event(*(sqs.record(sqs.body("order.placed", order, event_id=f"evt_{i}")) for i in range(10)))

    # WHEN the batch is handled
    response = consumer.handle(event, FakeContext())

    # THEN each event ran once, for one read of the breaker beside the claim and the completions
    assert failed_ids(response) == [] and len(ran) == 10
    assert calls.operations.count("BatchGetItem") == 1
    print(f"store round trips for 10 records with a closed breaker: {len(calls.operations)} {calls.operations}")
    assert len(calls.operations) <= 4


def test_a_v1_message_redelivered_across_the_deploy_to_v2_is_a_duplicate_in_the_table(dynamodb):
    # GIVEN a v1 "greeting" processed through the DynamoDB store by the consumer at version 1
    from tests.unit.test_event_versions import Seen, consumer_at, greeting

    seen = Seen()
    store = DynamoDBIdempotency(lambda: DynamoDBStore(TABLE, TTL))
    first = sqs.event(sqs.record(json.dumps(greeting("evt_1"))))
    assert failed_ids(BatchConsumer(consumer_at(1, seen), InMemoryDLQ(), idempotency=store).handle(
        first, FakeContext())) == []  # fmt: skip
    stored = dynamodb.scan(TableName=TABLE)["Items"]
    # A version-1 item is written as before versions: no fingerprint_version beside the fingerprint
    assert len(stored) == 1 and "fingerprint_version" not in stored[0]

    # WHEN, after the deploy to version 2, SQS delivers it again, beside the same id with another payload
    dlq = InMemoryDLQ()
    again = sqs.event(sqs.record(json.dumps(greeting("evt_1"))), sqs.record(json.dumps(greeting("evt_1", name="Bo B"))))
    response = BatchConsumer(consumer_at(2, seen), dlq, idempotency=store).handle(again, FakeContext())

    # THEN the redelivery is a duplicate (compared at version 1), the other a reused event_id, and the
    # handler ran once in all
    assert failed_ids(response) == []
    assert [message.kind for message in dlq.sent] == ["reused_event_id"]
    assert len(seen.events) == 1

    # AND a completion by the consumer at version 2 stores its fingerprint's version beside it
    BatchConsumer(consumer_at(2, seen), InMemoryDLQ(), idempotency=store).handle(
        sqs.event(sqs.record(json.dumps(greeting("evt_2")))), FakeContext()
    )
    versions = {item["fingerprint_version"]["N"] for item in dynamodb.scan(TableName=TABLE)["Items"]
                if "fingerprint_version" in item}  # fmt: skip
    assert versions == {"2"}
