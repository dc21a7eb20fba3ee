"""The idempotency store on DynamoDB: the port (port.py) as transactions of a batch's records.

Powertools' decorators cannot wrap async handlers nor a batch, and its persistence layer makes one
call per record and imports boto3 (~100 ms of every cold start), so the consumer drives the steps
itself on a botocore client, for all the records of a batch together, on the items records.py
defines:

- ``claim``: one conditional in-progress write per distinct event, 100 to a ``TransactWriteItems``
  (transactions in parallel), each expiring with the function's remaining time. A write refused
  by its condition cancels the transaction; DynamoDB returns the record that refused it, and the
  other writes go again together. An event already completed is a duplicate: acknowledged
  without running its handler. One in progress elsewhere is retried no sooner than its in-progress
  record expires. One whose stored fingerprint differs (the same ``event_id`` with another
  ``event_type`` or payload) is a producer bug: quarantined, never acknowledged.
- ``settle``: completions in ``BatchWriteItem`` requests of 25, in parallel; the consumer calls it as
  handlers return (group commit, pipeline/commit.py), so a crash repeats only the effects whose
  completion was still in flight. A completed record lives ``expires_after_seconds`` (queue + DLQ
  retention, so a redriven copy is still recognised). Releases are conditional deletes, 100 to a
  ``TransactWriteItems``: they delete only this execution's own in-progress record (its in-progress
  expiry, written by the claim, is the claim's token), so a release that runs late, even after a
  freeze and thaw, can never delete a record another execution has since claimed or completed.
  Releases refused for contention go again after a jittered backoff within the deadline, as claims do.

Every call runs within the time reserve (budget.py) on a client with short timeouts: a store that
does not answer makes the records retryable and never lets the function time out.
The store (and botocore) is created on first use, never at import.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqs_consumer.budget import MAX_ATTEMPTS, Deadline, run_parallel, shortfall
from sqs_consumer.clients import dynamodb_client
from sqs_consumer.errors import DeadlineReachedError, describe
from sqs_consumer.idempotency.fingerprint import same_event
from sqs_consumer.idempotency.port import Claim, ClaimState, EventInProgressError, Held, StoreUnavailableError
from sqs_consumer.idempotency.records import (
    COMPLETED,
    INPROGRESS,
    ItemFormat,
    StoredRecord,
    claim_token,
    completed_put,
    conditional_delete,
    in_progress_put,
)
from sqs_consumer.models.base import BaseEvent
from sqs_consumer.models.followups import FollowUp
from sqs_consumer.observability import logger

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

BATCH_WRITE_ITEMS = 25
TRANSACT_ITEMS = 100
# Claims refused for contention (a throttle, a conflicting transaction) go again after a jittered
# backoff while the deadline allows, at most this many times in all.
TRANSACT_ATTEMPTS = 5
CLAIM_BACKOFF_SECONDS = 0.025
# DynamoDB's answers that a retry can fix: throttling, and transactions that met another one.
_CONTENTION = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TransactionConflictException",
        "TransactionInProgressException",
    }
)
_CONTENDED_REASONS = frozenset({"TransactionConflict", "ProvisionedThroughputExceeded", "ThrottlingError"})
# Backoff jitter from the OS, as retry.py's: environments restored from one snapshot share random's state.
_JITTER = random.SystemRandom()


class DynamoDBStore(ItemFormat):
    """The idempotency table in Powertools' format, on a botocore client with budget.py's config.

    Configured as Powertools' ``DynamoDBPersistenceLayer`` would be with
    ``IdempotencyConfig(event_key_jmespath="event_id", payload_validation_jmespath=FINGERPRINT_JMESPATH,
    expires_after_seconds=...)`` and ``function_name=KEY_NAMESPACE``.
    """

    def __init__(self, table_name: str, expires_after_seconds: int, client: DynamoDBClient | None = None) -> None:
        super().__init__(table_name, expires_after_seconds)
        self.client = client if client is not None else dynamodb_client()


class DynamoDBIdempotency:
    def __init__(
        self,
        persistence_factory: Callable[[], DynamoDBStore],
        clock_ms: Callable[[], float] = lambda: time.time() * 1000,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._factory = persistence_factory
        self._persistence: DynamoDBStore | None = None
        self._clock_ms = clock_ms
        self._sleep = sleep

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
            unavailable = StoreUnavailableError(f"idempotency store unavailable: {describe(exc)}")
            return [Claim(ClaimState.UNAVAILABLE, unavailable) for _ in events]
        chunks = [list(events[start : start + TRANSACT_ITEMS]) for start in range(0, len(events), TRANSACT_ITEMS)]
        claimers = [
            _Claimer(
                store,
                chunk,
                remaining_ms=remaining_ms,
                deadline=deadline,
                clock_ms=self._clock_ms,
                backoff=self._backoff,
            )
            for chunk in chunks
        ]
        outcomes = run_parallel(claimers, deadline)
        claims: list[Claim] = []
        for chunk, outcome in zip(chunks, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                claims += [Claim(ClaimState.UNAVAILABLE, _unavailable(event, outcome)) for event in chunk]
            else:
                claims += outcome
        return claims

    def _backoff(self, attempt: int, deadline: Deadline) -> bool:
        """Sleep before the next attempt (full jitter); False when the deadline leaves no time for it."""
        pause = _JITTER.uniform(0, CLAIM_BACKOFF_SECONDS * 2**attempt)
        if pause >= deadline.seconds_left():
            return False
        self._sleep(pause)
        return True

    def settle(
        self,
        succeeded: Sequence[BaseEvent],
        released: Sequence[Held],
        deadline: Deadline,
        followups: Mapping[str, Sequence[FollowUp]] | None = None,
    ) -> int:
        if not succeeded and not released:
            return 0
        kept = followups or {}
        try:
            store = self._store()
            completions = [completed_put(store, event, kept.get(event.event_id, ())) for event in succeeded]
        except Exception as exc:  # the in-progress records expire with the function's timeout instead
            logger.error("Could not settle idempotency records", error=describe(exc))
            return len(succeeded)
        chunks = [
            completions[start : start + BATCH_WRITE_ITEMS] for start in range(0, len(completions), BATCH_WRITE_ITEMS)
        ]
        calls = [_writer(store, chunk, deadline) for chunk in chunks]
        held = [item for item in released if item.token is not None]
        calls += [
            self._releaser(store, held[start : start + TRANSACT_ITEMS], deadline)
            for start in range(0, len(held), TRANSACT_ITEMS)
        ]
        outcomes = run_parallel(calls, deadline)
        missed = shortfall(outcomes)
        if missed:
            # Completed effects stay effective; their in-progress records expire with the function's
            # timeout, and released ones likewise: a retry then runs.
            logger.error(
                "Idempotency records not settled; they expire with the function's timeout", extra=missed.fields()
            )
        unconfirmed = 0
        for chunk, outcome in zip(chunks, outcomes, strict=False):
            unconfirmed += len(chunk) if isinstance(outcome, BaseException) else int(outcome)
        return unconfirmed

    def _releaser(self, store: DynamoDBStore, released: list[Held], deadline: Deadline) -> Callable[[], int]:
        """Delete this execution's own in-progress records, and nothing else: one that another execution
        has claimed since, or completed, no longer carries this claim's token and is left as it is.

        Up to 100 conditional deletes to a ``TransactWriteItems`` (a batch near its deadline may release
        thousands of unstarted records at once); a refused condition cancels the transaction, and the
        others are sent again without it. Contention (throttling, a conflicting transaction) is retried
        after a jittered backoff within the deadline, as claims are: a release dropped for it would hold
        the event in progress until the function's full timeout, and waste its next receive."""

        def release() -> int:
            from botocore.exceptions import ClientError  # noqa: PLC0415

            pending = list(released)
            for attempt in range(TRANSACT_ATTEMPTS):
                try:
                    store.client.transact_write_items(TransactItems=[conditional_delete(store, h) for h in pending])  # type: ignore[misc]
                except ClientError as exc:
                    code = exc.response.get("Error", {}).get("Code")
                    if code in _CONTENTION:
                        if not self._backoff(attempt, deadline):
                            raise
                        continue
                    if code != "TransactionCanceledException":
                        raise
                    reasons = exc.response.get("CancellationReasons") or []
                    codes = [str(reason.get("Code")) for reason in reasons]
                    contended = set(codes) - {"None", "ConditionalCheckFailed"}
                    if contended - _CONTENDED_REASONS or not (contended or "ConditionalCheckFailed" in codes):
                        raise  # a reason no retry fixes, or none given
                    # Records no longer ours are left as they are; the others go again together.
                    refused = {index for index, why in enumerate(codes) if why == "ConditionalCheckFailed"}
                    pending = [held for index, held in enumerate(pending) if index not in refused]
                    if not pending:
                        return 0
                    if contended and not self._backoff(attempt, deadline):
                        raise
                    continue
                return 0
            raise StoreUnavailableError(f"idempotency release kept meeting contention ({len(pending)} records)")

        return release


class _Claimer:
    """One transaction of conditional in-progress writes; the events that conflict are told apart
    from the reasons DynamoDB gives, and the others written again together, after a jittered
    backoff when DynamoDB refused them for contention (throttling, a conflicting transaction)."""

    def __init__(
        self,
        store: DynamoDBStore,
        events: list[BaseEvent],
        *,
        remaining_ms: int,
        deadline: Deadline,
        clock_ms: Callable[[], float],
        backoff: Callable[[int, Deadline], bool],
    ) -> None:
        self._store = store
        self._events = events
        self._remaining_ms = remaining_ms
        self._deadline = deadline
        self._clock_ms = clock_ms
        self._backoff = backoff

    def __call__(self) -> list[Claim]:
        from botocore.exceptions import ClientError  # noqa: PLC0415

        store, events = self._store, self._events
        puts = [in_progress_put(store, event, self._remaining_ms) for event in events]
        claims: dict[int, Claim] = {}
        pending = list(range(len(events)))
        why = "idempotency claim kept meeting contention"
        for attempt in range(TRANSACT_ATTEMPTS):
            try:
                store.client.transact_write_items(TransactItems=[puts[index] for index in pending])  # type: ignore[misc]
            except ClientError as exc:
                retry = self._refused(puts, exc, pending=pending, claims=claims)
                # The others were cancelled with them (or met another writer): written again together.
                pending = [index for index in pending if index not in claims]
                if not pending or isinstance(retry, str):
                    why = retry if isinstance(retry, str) else why
                    break
                if retry and not self._backoff(attempt, self._deadline):
                    break
                continue
            for index in pending:
                claims[index] = Claim(ClaimState.ACQUIRED, token=claim_token(puts[index]))
            pending = []
            break
        for index in pending:
            claims[index] = Claim(ClaimState.UNAVAILABLE, StoreUnavailableError(why))
        return [claims[index] for index in range(len(events))]

    def _refused(
        self, puts: list[dict[str, Any]], exc: Exception, *, pending: list[int], claims: dict[int, Claim]
    ) -> bool | str:
        """Classify the writes a refused transaction names; True: contention, go again after a pause;
        False: go again at once without them; a string: why going again cannot help."""
        response: dict[str, Any] = getattr(exc, "response", {})
        code = response.get("Error", {}).get("Code")
        if code in _CONTENTION:
            return True
        if code != "TransactionCanceledException":
            raise exc
        reasons = response.get("CancellationReasons") or []
        for index, reason in zip(pending, reasons, strict=False):
            if reason.get("Code") == "ConditionalCheckFailed":
                item = reason.get("Item")
                claims[index] = self._existing(
                    self._events[index], dict(item) if item else None, claim_token(puts[index])
                )
        codes = {str(reason.get("Code")) for reason in reasons} - {"None", "ConditionalCheckFailed"}
        if codes & _CONTENDED_REASONS:
            return True
        if codes:
            return f"idempotency claim refused: {', '.join(sorted(codes))}"
        return False

    def _existing(self, event: BaseEvent, item: dict[str, Any] | None, token: int) -> Claim:
        """What the record that refused our in-progress write says about ``event``.

        Our own write can refuse us: an attempt that timed out on the client side yet was applied,
        then retried. It carries this claim's token: the claim is ours."""
        store = self._store
        if item is None:  # an older DynamoDB answer without the item: read it
            item = store.client.get_item(
                TableName=store.table_name, Key=store.key(event.event_id), ConsistentRead=True
            ).get("Item")
        if item is None:  # gone since: whoever held it released it; retry at once
            return Claim(ClaimState.IN_PROGRESS, EventInProgressError("its record changed meanwhile", 1))
        record = store.record(dict(item))
        if record.status == INPROGRESS and record.in_progress_expiry_timestamp == token:
            return Claim(ClaimState.ACQUIRED, token=token)
        stored = self._stored_claim(event, record)
        # A record written before fingerprints were stored has none: it is the same event.
        if record.payload_hash and not same_event(record.payload_hash, event, record.payload_version):
            return Claim(
                ClaimState.REUSED,
                stored_fingerprint=record.payload_hash,
                stored=stored,
                stored_version=record.payload_version,
            )
        return stored

    def _stored_claim(self, event: BaseEvent, record: StoredRecord) -> Claim:
        """The claim an event matching the stored one gets: a duplicate, or in progress elsewhere."""
        if record.status == COMPLETED:  # with the follow-ups its first run left unsent, if any
            return Claim(ClaimState.DUPLICATE, pending=record.followups)
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


def _unavailable(event: BaseEvent, error: BaseException | None) -> Exception:
    if isinstance(error, DeadlineReachedError):
        return StoreUnavailableError(f"idempotency store did not answer in time for event_id {event.event_id!r}")
    return StoreUnavailableError(
        f"idempotency store failed for event_id {event.event_id!r}: {describe(error) if error is not None else None}"
    )


def _writer(store: DynamoDBStore, requests: list[dict[str, Any]], deadline: Deadline) -> Callable[[], int]:
    """One BatchWriteItem, its unprocessed items retried while time is left; returns how many were left."""

    def write() -> int:
        pending = requests
        for attempt in range(MAX_ATTEMPTS + 1):
            response = store.client.batch_write_item(RequestItems={store.table_name: pending})  # type: ignore[dict-item]
            pending = [dict(item) for item in response.get("UnprocessedItems", {}).get(store.table_name, [])]
            if not pending or deadline.passed:
                break
            time.sleep(min(_JITTER.uniform(0, 0.05 * 2**attempt), deadline.seconds_left()))
        return len(pending)

    return write
