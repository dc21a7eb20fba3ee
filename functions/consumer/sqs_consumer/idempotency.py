"""Exactly-once effects per business event (SQS delivers at least once), at the cost of a batch.

The table is the one Powertools' idempotency utility (``DynamoDBPersistenceLayer``) writes, item
for item: the same key, hashes, attributes and statuses, so either can read what the other wrote
(tests/integration/test_idempotency.py checks it against Powertools itself). Its decorators cannot
wrap async handlers nor a batch, and its persistence layer makes one call per record and imports
boto3 (~100 ms of every cold start), so the consumer drives the steps itself on a botocore client,
for all the records of a batch together:

- ``claim``: one conditional in-progress write per distinct event, 100 to a ``TransactWriteItems``
  (transactions in parallel), each expiring with the function's remaining time. A write refused
  by its condition cancels the transaction; DynamoDB returns the record that refused it, and the
  other writes go again together. An event already completed is a duplicate: acknowledged
  without running its handler. One in progress elsewhere is retried no sooner than its in-progress
  record expires. One whose stored fingerprint differs (the same ``event_id`` with another
  ``event_type`` or payload) is a producer bug: quarantined, never acknowledged.
- ``settle``: the completions and the releases of the batch in ``BatchWriteItem`` requests of 25,
  in parallel. A completed record lives ``expires_after_seconds`` (queue + DLQ retention, so a
  redriven copy is still recognised); a released one lets the retry run.

The record is looked up by ``event_id`` (as before, so a deployed table keeps its records) and
carries a fingerprint of ``[event_type, payload]`` in Powertools' payload-validation attribute.
Every call runs within the time reserve (budget.py) on a client with short timeouts: a store that
does not answer makes the records retryable and never lets the function time out.
The store (and botocore) is created on first use, never at import.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sqs_consumer.budget import MAX_ATTEMPTS, Deadline, run_parallel, shortfall
from sqs_consumer.clients import dynamodb_client
from sqs_consumer.errors import DeadlineReachedError
from sqs_consumer.models.base import BaseEvent
from sqs_consumer.observability import logger

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# The namespace of the keys: "<function>.<namespace>#<md5 of event_id>" (Powertools' function_name).
KEY_NAMESPACE = "sqs_consumer.events"
# What the fingerprint covers, as Powertools' payload_validation_jmespath: a reused event_id with
# another type or payload is told apart.
FINGERPRINT_JMESPATH = "[event_type, payload]"
BATCH_WRITE_ITEMS = 25
TRANSACT_ITEMS = 100
TRANSACT_ATTEMPTS = 3
REUSED_REASON = "event_id reused with a different payload"


class EventInProgressError(Exception):
    """Another execution is processing the same event: retry no sooner than ``retry_after_seconds``."""

    def __init__(self, message: str, retry_after_seconds: int = 0) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class StoreUnavailableError(Exception):
    """The idempotency store did not answer in time: the record is retried."""


class ClaimState(enum.Enum):
    ACQUIRED = "acquired"  # run the handler
    DUPLICATE = "duplicate"  # completed before: acknowledge
    IN_PROGRESS = "in_progress"  # held elsewhere: retry after it expires
    REUSED = "reused"  # same event_id, other type or payload: quarantine
    UNAVAILABLE = "unavailable"  # the store failed: retry


@dataclass(frozen=True, slots=True)
class Claim:
    state: ClaimState
    error: Exception | None = None


class Idempotency(Protocol):
    def claim(self, events: Sequence[BaseEvent], remaining_ms: int, deadline: Deadline) -> list[Claim]:
        """One claim per event (distinct event_ids), in order."""

    def settle(self, succeeded: Sequence[BaseEvent], released: Sequence[BaseEvent], deadline: Deadline) -> None:
        """Mark ``succeeded`` completed and delete the in-progress records of ``released``; never raise."""


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """What an item of the table says (Powertools' ``DataRecord``, the fields read here)."""

    status: str
    in_progress_expiry_timestamp: int | None
    payload_hash: str | None


class DynamoDBStore:
    """The idempotency table in Powertools' format, on a botocore client with budget.py's config.

    Configured as Powertools' ``DynamoDBPersistenceLayer`` would be with
    ``IdempotencyConfig(event_key_jmespath="event_id", payload_validation_jmespath=FINGERPRINT_JMESPATH,
    expires_after_seconds=...)`` and ``function_name=KEY_NAMESPACE``.
    """

    key_attr = "id"
    expiry_attr = "expiration"
    in_progress_expiry_attr = "in_progress_expiration"
    status_attr = "status"
    data_attr = "data"
    validation_key_attr = "validation"

    def __init__(self, table_name: str, expires_after_seconds: int, client: DynamoDBClient | None = None) -> None:
        self.table_name = table_name
        self.expires_after_seconds = expires_after_seconds
        self.key_prefix = f"{os.getenv('AWS_LAMBDA_FUNCTION_NAME', 'test-func')}.{KEY_NAMESPACE}"
        self.client = client if client is not None else dynamodb_client()

    def key(self, data: dict[str, Any]) -> dict[str, Any]:
        """The item's key: Powertools' hashed idempotency key of ``data``'s event_id."""
        return {self.key_attr: {"S": f"{self.key_prefix}#{_powertools_hash(data['event_id'])}"}}

    def fingerprint(self, data: dict[str, Any]) -> str:
        """Powertools' payload hash: of ``[event_type, payload]``."""
        return _powertools_hash([data.get("event_type"), data.get("payload")])

    def expiry(self) -> int:
        return int(time.time() + self.expires_after_seconds)

    def record(self, item: dict[str, Any]) -> StoredRecord:
        """An item as DynamoDB returns it (attribute values typed ``{"S": ...}``, ``{"N": ...}``)."""

        def number(name: str) -> int | None:
            value = item.get(name, {}).get("N")
            return int(float(value)) if value is not None else None

        return StoredRecord(
            status=str(item.get(self.status_attr, {}).get("S", "")),
            in_progress_expiry_timestamp=number(self.in_progress_expiry_attr),
            payload_hash=item.get(self.validation_key_attr, {}).get("S"),
        )


# Powertools' record statuses.
INPROGRESS = "INPROGRESS"
COMPLETED = "COMPLETED"


def _powertools_hash(data: Any) -> str:
    """Powertools' ``_generate_hash`` with its default hash function (md5): of the sorted JSON."""
    return hashlib.md5(json.dumps(data, sort_keys=True).encode(), usedforsecurity=False).hexdigest()


def event_data(event: BaseEvent) -> dict[str, Any]:
    """What the key and the fingerprint are computed from: the fields as the producer sent them.

    Defaults are left out, so that a field added to a model later does not change the
    fingerprint of events stored before it.
    """
    return event.model_dump(mode="json", include={"event_id", "event_type", "payload"}, exclude_unset=True)


class DynamoDBIdempotency:
    def __init__(
        self,
        persistence_factory: Callable[[], DynamoDBStore],
        clock_ms: Callable[[], float] = lambda: time.time() * 1000,
    ) -> None:
        self._factory = persistence_factory
        self._persistence: DynamoDBStore | None = None
        self._clock_ms = clock_ms

    def _store(self) -> DynamoDBStore:
        if self._persistence is None:
            self._persistence = self._factory()
        return self._persistence

    def claim(self, events: Sequence[BaseEvent], remaining_ms: int, deadline: Deadline) -> list[Claim]:
        if not events:
            return []
        try:
            store = self._store()
        except Exception as exc:  # no store, no run: every record is retried
            unavailable = StoreUnavailableError(f"idempotency store unavailable: {exc}")
            return [Claim(ClaimState.UNAVAILABLE, unavailable) for _ in events]
        chunks = [list(events[start : start + TRANSACT_ITEMS]) for start in range(0, len(events), TRANSACT_ITEMS)]
        outcomes = run_parallel([self._claimer(store, chunk, remaining_ms) for chunk in chunks], deadline)
        claims: list[Claim] = []
        for chunk, outcome in zip(chunks, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                claims += [Claim(ClaimState.UNAVAILABLE, _unavailable(event, outcome)) for event in chunk]
            else:
                claims += outcome
        return claims

    def _claimer(self, store: DynamoDBStore, events: list[BaseEvent], remaining_ms: int) -> Callable[[], list[Claim]]:
        """One transaction of conditional in-progress writes; the events that conflict are told apart
        from the reasons DynamoDB gives, and the others written again together."""

        def claim() -> list[Claim]:
            from botocore.exceptions import ClientError  # noqa: PLC0415

            puts = [_in_progress_put(store, event, remaining_ms) for event in events]
            claims: dict[int, Claim] = {}
            pending = list(range(len(events)))
            for _ in range(TRANSACT_ATTEMPTS):
                try:
                    store.client.transact_write_items(TransactItems=[puts[index] for index in pending])  # type: ignore[misc]
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                        raise
                    reasons = exc.response.get("CancellationReasons") or []
                    for index, reason in zip(pending, reasons, strict=False):
                        if reason.get("Code") == "ConditionalCheckFailed":
                            item = reason.get("Item")
                            claims[index] = self._existing(store, events[index], dict(item) if item else None)
                    # The others were cancelled with them (or raced another writer): written again together.
                    pending = [index for index in pending if index not in claims]
                    if not pending:
                        break
                    continue
                claims.update({index: Claim(ClaimState.ACQUIRED) for index in pending})
                pending = []
                break
            for index in pending:
                claims[index] = Claim(
                    ClaimState.UNAVAILABLE, StoreUnavailableError("idempotency claim kept conflicting")
                )
            return [claims[index] for index in range(len(events))]

        return claim

    def _existing(self, store: DynamoDBStore, event: BaseEvent, item: dict[str, Any] | None) -> Claim:
        """What the record that refused our in-progress write says about ``event``."""
        data = event_data(event)
        if item is None:  # an older DynamoDB answer without the item: read it
            item = store.client.get_item(TableName=store.table_name, Key=store.key(data), ConsistentRead=True).get(
                "Item"
            )
        if item is None:  # gone since: whoever held it released it; retry at once
            return Claim(ClaimState.IN_PROGRESS, EventInProgressError("its record changed meanwhile", 1))
        record = store.record(dict(item))
        # A record written before fingerprints were stored has none: it is the same event.
        if record.payload_hash and record.payload_hash != store.fingerprint(data):
            return Claim(ClaimState.REUSED)
        if record.status == COMPLETED:
            return Claim(ClaimState.DUPLICATE)
        expiry_ms = record.in_progress_expiry_timestamp
        left_s = max(0, math.ceil((float(expiry_ms) - self._clock_ms()) / 1000)) if expiry_ms else 0
        return Claim(
            ClaimState.IN_PROGRESS,
            EventInProgressError(
                f"event_id {event.event_id!r} is being processed elsewhere"
                + (f" (its in-progress record expires in {left_s} s)" if expiry_ms else ""),
                retry_after_seconds=left_s + 1,
            ),
        )

    def settle(self, succeeded: Sequence[BaseEvent], released: Sequence[BaseEvent], deadline: Deadline) -> None:
        if not succeeded and not released:
            return
        try:
            store = self._store()
            requests = [_completed(store, event) for event in succeeded] + [_released(store, e) for e in released]
        except Exception as exc:  # the in-progress records expire with the function's timeout instead
            logger.error("Could not settle idempotency records", error=str(exc))
            return
        chunks = [requests[start : start + BATCH_WRITE_ITEMS] for start in range(0, len(requests), BATCH_WRITE_ITEMS)]
        missed = shortfall(run_parallel([_writer(store, chunk, deadline) for chunk in chunks], deadline))
        if missed:
            # Completed effects stay effective; their in-progress records expire with the function's
            # timeout, and released ones likewise: a retry then runs.
            logger.error(
                "Idempotency records not settled; they expire with the function's timeout", extra=missed.fields()
            )


def _unavailable(event: BaseEvent, error: BaseException | None) -> Exception:
    if isinstance(error, DeadlineReachedError):
        return StoreUnavailableError(f"idempotency store did not answer in time for event_id {event.event_id!r}")
    return StoreUnavailableError(f"idempotency store failed for event_id {event.event_id!r}: {error}")


def _in_progress_put(store: DynamoDBStore, event: BaseEvent, remaining_ms: int) -> dict[str, Any]:
    """The item and condition of Powertools' ``save_inprogress``, as a transaction's Put."""
    data = event_data(event)
    now = time.time()
    item: dict[str, Any] = {
        **store.key(data),
        store.expiry_attr: {"N": str(store.expiry())},
        store.status_attr: {"S": INPROGRESS},
        store.in_progress_expiry_attr: {"N": str(int(now * 1000) + remaining_ms)},
        store.validation_key_attr: {"S": store.fingerprint(data)},
    }
    # Free, expired, or in progress past its expiry (a timed-out execution): Powertools' condition.
    condition = (
        "attribute_not_exists(#id) OR #expiry < :now OR "
        "(#status = :inprogress AND attribute_exists(#in_progress_expiry) AND #in_progress_expiry < :now_in_millis)"
    )
    return {
        "Put": {
            "TableName": store.table_name,
            "Item": item,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {
                "#id": store.key_attr,
                "#expiry": store.expiry_attr,
                "#in_progress_expiry": store.in_progress_expiry_attr,
                "#status": store.status_attr,
            },
            "ExpressionAttributeValues": {
                ":now": {"N": str(int(now))},
                ":now_in_millis": {"N": str(int(now * 1000))},
                ":inprogress": {"S": INPROGRESS},
            },
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
    }


def _completed(store: DynamoDBStore, event: BaseEvent) -> dict[str, Any]:
    """The item Powertools' ``save_success`` leaves, written whole (BatchWriteItem has no update)."""
    data = event_data(event)
    item: dict[str, Any] = {
        **store.key(data),
        store.expiry_attr: {"N": str(store.expiry())},
        store.status_attr: {"S": COMPLETED},
        store.data_attr: {"S": json.dumps({})},
        store.validation_key_attr: {"S": store.fingerprint(data)},
    }
    return {"PutRequest": {"Item": item}}


def _released(store: DynamoDBStore, event: BaseEvent) -> dict[str, Any]:
    return {"DeleteRequest": {"Key": store.key(event_data(event))}}


def _writer(store: DynamoDBStore, requests: list[dict[str, Any]], deadline: Deadline) -> Callable[[], int]:
    """One BatchWriteItem, its unprocessed items retried while time is left; returns how many were left."""

    def write() -> int:
        pending = requests
        for attempt in range(MAX_ATTEMPTS + 1):
            response = store.client.batch_write_item(RequestItems={store.table_name: pending})  # type: ignore[dict-item]
            pending = [dict(item) for item in response.get("UnprocessedItems", {}).get(store.table_name, [])]
            if not pending or deadline.passed:
                break
            time.sleep(min(0.05 * 2**attempt, deadline.seconds_left()))
        return len(pending)

    return write
