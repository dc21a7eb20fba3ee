"""Rate limits per dependency, held across every instance of the function: a token bucket in the store,
taken from in leases of several tokens.

The bucket (``dependency#<name>#tokens`` in the idempotency table) fills at ``rate_per_second`` up to
``burst``. An instance leases a block of tokens with one conditional write (about half a second's worth:
10 tokens at 20/s, so the store sees one write per 10 calls, whatever the number of instances), spends
them locally, and leases again when they run out. Every token handed out was in the bucket, so all the
instances together never exceed ``burst + rate x time``; a lease left unspent (its batch ended) is
dropped after ``HELD_SECONDS``, a shortfall of at most one block per instance. A record over the rate
waits for tokens within the batch's time; past it, it is listed to come back once they have accrued:
never a failure, never counted against the dependency's breaker.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from sqs_consumer.dependencies.store import KEY_ATTR, KEY_PREFIX
from sqs_consumer.errors import describe
from sqs_consumer.observability import logger

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# How many seconds of the rate one lease takes, and how long leased tokens stay usable.
LEASE_SECONDS = 0.5
HELD_SECONDS = 2.0
WRITE_ATTEMPTS = 5
_ROUNDING = 1e-9
_SHORTEST_WAIT = 0.001


@dataclass(frozen=True, slots=True)
class RateLimit:
    rate_per_second: float
    burst: int | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate_per_second) and self.rate_per_second > 0):
            raise ValueError("rate_per_second must be a number > 0")
        if self.burst is not None and self.burst < 1:
            raise ValueError("burst must be >= 1")

    @property
    def capacity(self) -> int:
        """What the bucket holds at most: the burst, by default one second of the rate."""
        return self.burst if self.burst is not None else max(1, math.ceil(self.rate_per_second))

    @property
    def block(self) -> int:
        return max(1, min(self.capacity, math.floor(self.rate_per_second * LEASE_SECONDS)))


@dataclass(frozen=True, slots=True)
class Bucket:
    tokens: float = 0.0
    refilled_at: float = 0.0
    version: int = 0

    def available(self, now: float, limit: RateLimit) -> float:
        if self.version == 0:  # never written: full
            return float(limit.capacity)
        return min(float(limit.capacity), self.tokens + max(0.0, now - self.refilled_at) * limit.rate_per_second)


class TokenStore(Protocol):
    def read(self, name: str) -> Bucket: ...

    def write(self, name: str, expected_version: int, bucket: Bucket) -> Bucket | None:
        """None when written; else the bucket found instead."""
        ...


class InMemoryTokenStore:
    def __init__(self) -> None:
        self.buckets: dict[str, Bucket] = {}
        self.writes = 0
        self._lock = threading.Lock()

    def read(self, name: str) -> Bucket:
        with self._lock:
            return self.buckets.get(name, Bucket())

    def write(self, name: str, expected_version: int, bucket: Bucket) -> Bucket | None:
        with self._lock:
            self.writes += 1
            current = self.buckets.get(name, Bucket())
            if current.version != expected_version:
                return current
            self.buckets[name] = bucket
            return None


class DynamoDBTokenStore:
    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        self.table_name = table_name
        self.client = client

    def read(self, name: str) -> Bucket:
        item = self.client.get_item(TableName=self.table_name, Key=_key(name), ConsistentRead=True).get("Item")
        return _bucket(item) if item else Bucket()

    def write(self, name: str, expected_version: int, bucket: Bucket) -> Bucket | None:
        from botocore.exceptions import ClientError  # noqa: PLC0415  # deferred: botocore

        item = {**_key(name), "tokens": {"N": repr(bucket.tokens)}, "refilled_at": {"N": repr(bucket.refilled_at)},
                "version": {"N": str(bucket.version)}}  # fmt: skip
        condition = "#v = :v" if expected_version else "attribute_not_exists(#v) OR #v = :v"
        try:
            self.client.put_item(TableName=self.table_name, Item=item, ConditionExpression=condition,
                                 ExpressionAttributeNames={"#v": "version"},
                                 ExpressionAttributeValues={":v": {"N": str(expected_version)}},
                                 ReturnValuesOnConditionCheckFailure="ALL_OLD")  # fmt: skip
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            found: Any = exc.response.get("Item")
            return _bucket(found) if found else self.read(name)
        return None


def _key(name: str) -> dict[str, Any]:
    return {KEY_ATTR: {"S": f"{KEY_PREFIX}{name}#tokens"}}


def _bucket(item: dict[str, Any]) -> Bucket:
    return Bucket(float(item["tokens"]["N"]), float(item["refilled_at"]["N"]), int(item["version"]["N"]))


class RateLimiter:
    """This instance's side of the shared buckets: tokens held from leases, and the last bucket seen."""

    def __init__(
        self,
        limits: Mapping[str, RateLimit],
        store_factory: Callable[[], TokenStore],
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.limits = dict(limits)
        self._jitter = jitter
        self._factory = store_factory
        self._store: TokenStore | None = None
        self._clock = clock
        self._sleep = sleep
        self._held: dict[str, tuple[int, float]] = {}
        self._seen: dict[str, Bucket] = {}
        self._lock = threading.Lock()

    def acquire(self, names: Sequence[str], budget_seconds: float) -> tuple[str, float] | None:
        """A token of each limited dependency in ``names``, waiting up to ``budget_seconds`` for them. None when
        taken; else the dependency that has none and the seconds until it will."""
        give_up_at = self._clock() + max(0.0, budget_seconds)
        for name in names:
            limit = self.limits.get(name)
            if limit is None:
                continue
            wait = self._take(name, limit, give_up_at)
            if wait is not None:
                return name, wait
        return None

    def _take(self, name: str, limit: RateLimit, give_up_at: float) -> float | None:
        with self._lock:  # one lease at a time per instance: the others spend what it brings
            while True:
                now = self._clock()
                count, leased_at = self._held.get(name, (0, now))
                if count > 0 and now - leased_at <= HELD_SECONDS:
                    self._held[name] = (count - 1, leased_at)
                    return None
                wait = self._lease(name, limit, give_up_at)
                if wait is None:
                    continue
                if self._clock() + wait > give_up_at:
                    return wait
                # Instances waiting for the same block wake up to a token's time apart, not all at its instant.
                self._sleep(wait + self._jitter() / limit.rate_per_second)

    def _lease(self, name: str, limit: RateLimit, give_up_at: float) -> float | None:
        """Take a block from the bucket (None: taken), or the seconds to wait: until a whole block has accrued
        if there is time for it (one write a block, not a token), else until one token has."""
        try:
            store = self._store = self._store or self._factory()
            bucket = self._seen.get(name) or store.read(name)
            for _ in range(WRITE_ATTEMPTS):
                # The time after the store's answer: a wait counted from before it would come a round trip
                # late, and the instance that won the last write would win every next one.
                now = self._clock()
                # A token's worth of time, less rounding: 0.05 s at 20/s accrues 0.9999... of a token.
                available = bucket.available(now, limit) + _ROUNDING
                block_wait = (limit.block - available) / limit.rate_per_second
                if available < limit.block and now + block_wait <= give_up_at:
                    self._seen[name] = bucket
                    return max(_SHORTEST_WAIT, block_wait)
                if available < 1:
                    self._seen[name] = bucket
                    return max(_SHORTEST_WAIT, (1 - available) / limit.rate_per_second)
                take = min(limit.block, math.floor(available))
                new = replace(
                    bucket, tokens=max(0.0, available - _ROUNDING - take), refilled_at=now, version=bucket.version + 1
                )
                found = store.write(name, bucket.version, new)
                if found is None:
                    self._seen[name], self._held[name] = new, (take, now)
                    return None
                bucket = found
            self._seen[name] = bucket
            return 1 / limit.rate_per_second
        except Exception as exc:  # no store, no lease: the record waits rather than exceed the rate
            logger.warning("Rate limit tokens not leased", dependency=name, error=describe(exc))
            self._seen.pop(name, None)
            return 1.0
