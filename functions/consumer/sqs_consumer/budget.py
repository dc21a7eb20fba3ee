"""The time left for the calls made after the records: quarantine sends and retry backoff.

No record starts once the remaining time is below the time reserve. What follows the
records (the DLQ sends, the visibility changes) runs within that reserve: in parallel,
and never past ``floor_ms`` before the timeout, which is kept for building the response
and flushing metrics. A call still running then counts as not made: a quarantine not
confirmed leaves its record listed (a retryable failure), a visibility change not made
leaves the record to the visibility timeout. Nothing is lost either way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, TypeVar

from sqs_consumer.errors import DeadlineReachedError, describe

if TYPE_CHECKING:
    from botocore.config import Config

T = TypeVar("T")

# Enough threads to overlap the round trips of a batch (SQS, DynamoDB); each holds one pooled connection.
MAX_PARALLEL_CALLS = 32


# Every AWS call of the function (SQS, DynamoDB) answers in milliseconds: short timeouts and
# botocore's standard retries, and run_parallel cuts off whatever is still waiting at the deadline.
CONNECT_TIMEOUT_SECONDS = 1
READ_TIMEOUT_SECONDS = 2
MAX_ATTEMPTS = 2


def client_config() -> Config:
    """The botocore config of the function's clients (botocore imported here, on first use)."""
    from botocore.config import Config  # noqa: PLC0415  # deferred: botocore is not on the import path

    return Config(
        retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        max_pool_connections=MAX_PARALLEL_CALLS,
    )


@dataclass(frozen=True, slots=True)
class Deadline:
    """``remaining_ms`` is the Lambda context's clock; ``floor_ms`` is kept for returning."""

    remaining_ms: Callable[[], int]
    floor_ms: int

    def seconds_left(self) -> float:
        return max(0.0, (self.remaining_ms() - self.floor_ms) / 1000)

    @property
    def passed(self) -> bool:
        return self.seconds_left() <= 0


@cache
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=MAX_PARALLEL_CALLS, thread_name_prefix="sqs-call")


def submit(call: Callable[[], T]) -> Future[T]:
    """Start ``call`` on the function's pool, for a caller that waits on it later (a prefetch)."""
    return _executor().submit(call)


def run_parallel(calls: Sequence[Callable[[], T]], deadline: Deadline) -> list[T | BaseException]:
    """Each call's result or exception, in order; ``DeadlineReachedError`` for a call the deadline cut off.

    Calls not yet started at the deadline are never started.
    """
    if not calls:
        return []
    if deadline.passed:
        return [DeadlineReachedError("not attempted: the function is close to its timeout") for _ in calls]
    stop = threading.Event()

    def guarded(call: Callable[[], T]) -> T:
        if stop.is_set():
            raise DeadlineReachedError("not attempted: the function is close to its timeout")
        return call()

    futures: list[Future[T]] = [_executor().submit(guarded, call) for call in calls]
    wait(futures, timeout=deadline.seconds_left())
    stop.set()
    results: list[T | BaseException] = []
    for future in futures:
        if not future.done():
            future.cancel()
            results.append(DeadlineReachedError("not confirmed before the function's timeout"))
        elif future.cancelled():
            results.append(DeadlineReachedError("not attempted: the function is close to its timeout"))
        else:
            error = future.exception()
            results.append(error if error is not None else future.result())
    return results


@dataclass(frozen=True, slots=True)
class Shortfall:
    """What a set of parallel batch calls left undone: requests that failed, items refused."""

    requests_failed: int
    items_left: int
    first_error: str | None

    def __bool__(self) -> bool:
        return bool(self.requests_failed or self.items_left)

    def fields(self) -> dict[str, object]:
        return {"requests_failed": self.requests_failed, "items_left": self.items_left, "error": self.first_error}


def shortfall(outcomes: Sequence[int | BaseException]) -> Shortfall:
    """Of calls that return how many of their items were refused, or raise."""
    errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    left = sum(outcome for outcome in outcomes if isinstance(outcome, int))
    return Shortfall(len(errors), left, describe(errors[0]) if errors else None)
