"""Offloaded payloads (payloads.py), read from S3 for the parse stage.

An error no retry can fix is a ``PoisonMessageError`` (the record is quarantined with its pointer
body and size attribute, so a redrive can read it again once the cause is fixed): the object or
bucket is gone, the function may not read it, it is larger than ``max_bytes``, or it is not UTF-8.
Anything else (throttling, 5xx, timeouts, connections) propagates: the record is listed and comes
back. No more than ``max_bytes`` is ever read. The consumer never deletes a payload: its message
may come back (a retry, a redrive from the DLQ); the bucket's lifecycle rule expires it.

A batch's payloads are fetched ahead, a few at a time, on budget.py's pool (``BatchPayloads``),
within a share of the function's memory: with the whole batch parsed before it runs (idempotency),
its events are held together already, and the payloads ahead come on top of them.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from functools import partial
from typing import TYPE_CHECKING

from sqs_consumer.budget import Deadline, submit
from sqs_consumer.clients import s3_client
from sqs_consumer.errors import DeadlineReachedError, PoisonMessageError, describe
from sqs_consumer.registry import PAYLOAD_MISSING, PAYLOAD_NOT_UTF8, PAYLOAD_TOO_LARGE, PAYLOAD_UNREADABLE

if TYPE_CHECKING:
    from botocore.exceptions import ClientError
    from mypy_boto3_s3 import S3Client

    from sqs_consumer.payloads import PayloadPointer

# S3's error codes that say the object will not be there on a retry either.
_MISSING = frozenset({"NoSuchKey", "NoSuchBucket", "NotFound", "404"})
# ...or that the function may not read it (a retry would be refused the same way).
_UNREADABLE = frozenset({"AccessDenied", "403", "AllAccessDisabled", "InvalidObjectState", "AccountProblem"})
# How many payloads of a batch are fetched ahead of the record being parsed: enough to overlap the
# round trips, few enough that a batch of large payloads never holds many at once.
PREFETCH_WINDOW = 8
# ...and how many bytes they may add up to (their announced sizes, or MAX_PAYLOAD_BYTES for one that
# announces none): a share of the function's memory, which Lambda gives in MB. Without it (a test, a
# script), Lambda's default memory size is assumed.
PREFETCH_MEMORY_SHARE = 0.25
DEFAULT_FUNCTION_MEMORY_MB = 128
_MB = 1_048_576


def prefetch_budget(environ: Mapping[str, str] = os.environ) -> int:
    """The bytes of a batch's payloads that may be fetched ahead: a share of the function's memory."""
    try:
        memory_mb = int(environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", DEFAULT_FUNCTION_MEMORY_MB))
    except ValueError:
        memory_mb = DEFAULT_FUNCTION_MEMORY_MB
    return int(max(memory_mb, 0) * _MB * PREFETCH_MEMORY_SHARE)


class S3Payloads:
    """Reads offloaded payloads from whatever bucket a pointer names that the function may read."""

    def __init__(
        self,
        max_bytes: int,
        *,
        prefetch_bytes: int | None = None,
        endpoint_url: str | None = None,
        client_factory: Callable[[str | None], S3Client] = s3_client,
    ) -> None:
        self.max_bytes = max_bytes
        # How many bytes of a batch's payloads may be fetched ahead (BatchPayloads).
        self.prefetch_bytes = prefetch_budget() if prefetch_bytes is None else prefetch_bytes
        self._endpoint_url = endpoint_url
        self._client_factory = client_factory
        self._client: S3Client | None = None

    def read(self, pointer: PayloadPointer, size: int | None) -> str:
        """The payload's text, ``PoisonMessageError`` when it can never be read, any other error to retry."""
        if size is not None and size > self.max_bytes:
            raise self._too_large(pointer, size, "its size attribute says")
        from botocore.exceptions import ClientError  # noqa: PLC0415  # deferred: clients.py

        try:
            response = self._s3().get_object(Bucket=pointer.bucket, Key=pointer.key)
        except ClientError as exc:
            raise _classified(exc, pointer) from exc
        body = response["Body"]
        try:
            length = response.get("ContentLength")
            if length is not None and length > self.max_bytes:
                raise self._too_large(pointer, length, "S3 says")
            data = body.read(self.max_bytes + 1)
        finally:
            body.close()
        if len(data) > self.max_bytes:
            raise self._too_large(pointer, len(data), "more than that was read:")
        try:
            return data.decode()
        except UnicodeDecodeError as exc:
            reason = f"offloaded payload {pointer} is not UTF-8 text: {describe(exc, typed=False)}"
            raise PoisonMessageError(PAYLOAD_NOT_UTF8, reason) from None

    def _too_large(self, pointer: PayloadPointer, size: int, source: str) -> PoisonMessageError:
        return PoisonMessageError(
            PAYLOAD_TOO_LARGE,
            f"offloaded payload {pointer}: {source} {size} bytes, over MAX_PAYLOAD_BYTES ({self.max_bytes})",
        )

    def _s3(self) -> S3Client:
        if self._client is None:
            self._client = self._client_factory(self._endpoint_url)
        return self._client


def _classified(exc: ClientError, pointer: PayloadPointer) -> Exception:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    if code in _MISSING:
        return PoisonMessageError(PAYLOAD_MISSING, f"offloaded payload {pointer} is missing: {code} "
                                  f"(bucket {pointer.bucket!r}, key {pointer.key!r})")  # fmt: skip
    if code in _UNREADABLE:
        where = f"bucket {pointer.bucket!r}, key {pointer.key!r}"
        return PoisonMessageError(PAYLOAD_UNREADABLE, f"offloaded payload {pointer} cannot be read by the function: "
                                  f"{code} ({where}; in a bucket the function may not list, S3 also answers "
                                  "AccessDenied for a missing key)")  # fmt: skip
    return exc


class BatchPayloads:
    """One batch's payloads: fetched ahead in batch order, at most ``PREFETCH_WINDOW`` and ``budget_bytes``
    at a time (the payload being parsed counted in), until ``deadline``. A payload that would not fit
    the budget alone is fetched when its record is parsed. A fetched payload is let go as it is read."""

    def __init__(self, store: S3Payloads, deadline: Deadline, budget_bytes: int) -> None:
        self._store = store
        self._deadline = deadline
        self._budget = budget_bytes
        self._queued: deque[tuple[str, PayloadPointer, int | None]] = deque()
        self._fetching: dict[str, tuple[PayloadPointer, int, Future[str]]] = {}
        self._held = 0  # the bytes counted for the fetches under way and the payload being parsed
        self._parsing = 0  # ...of which the payload being parsed
        self._passed: set[str] = set()

    def prefetch(self, wanted: Iterable[tuple[str, PayloadPointer, int | None]]) -> None:
        """Start fetching the payloads of these records (message id, pointer, announced size)."""
        self._queued.extend(wanted)
        self._fill()

    def read(self, message_id: str, pointer: PayloadPointer, size: int | None) -> str:
        """A record's payload: the one fetched ahead if it was, or fetched now."""
        future = self._take(message_id, pointer, size)
        try:
            if future is None:
                return self._store.read(pointer, size)
            return future.result(timeout=self._deadline.seconds_left())
        except FutureTimeoutError:
            if future is not None:
                future.cancel()
            reason = f"offloaded payload {pointer} not fetched before the function's timeout"
            raise DeadlineReachedError(reason) from None
        finally:
            self._fill()  # the next ones start as this one is done with

    def _take(self, message_id: str, pointer: PayloadPointer, size: int | None) -> Future[str] | None:
        """The record's fetch ahead, if there is one for its pointer; its bytes now counted as parsed."""
        self._passed.add(message_id)
        fetching = self._fetching.pop(message_id, None)
        if fetching is not None and fetching[0] != pointer:
            self._drop(fetching)
            fetching = None
        self._held -= self._parsing
        if fetching is None:
            self._parsing = self._cost(size)
            self._held += self._parsing
            return None
        self._parsing = fetching[1]
        return fetching[2]

    def passed(self, message_id: str) -> None:
        """The record's parse is over: its payload, read or not, no longer holds a place or its bytes."""
        self._passed.add(message_id)
        unread = self._fetching.pop(message_id, None)
        if unread is not None:
            self._drop(unread)
        self._held -= self._parsing
        self._parsing = 0
        self._fill()

    def _drop(self, fetching: tuple[PayloadPointer, int, Future[str]]) -> None:
        fetching[2].cancel()  # one under way runs on; its text is let go with the future
        self._held -= fetching[1]

    def _cost(self, size: int | None) -> int:
        return self._store.max_bytes if size is None else min(size, self._store.max_bytes)

    def _fill(self) -> None:
        while self._queued and len(self._fetching) < PREFETCH_WINDOW:
            message_id, pointer, size = self._queued[0]
            cost = self._cost(size)
            if message_id in self._passed or message_id in self._fetching or cost > self._budget:
                self._queued.popleft()  # parsed already, or fetched when its record is parsed
                continue
            if size is not None and size > self._store.max_bytes:
                self._queued.popleft()  # refused by its size attribute, without a GET
                continue
            if self._held + cost > self._budget:
                return  # it starts when enough of those before it are parsed
            self._queued.popleft()
            self._held += cost
            self._fetching[message_id] = (pointer, cost, submit(partial(self._store.read, pointer, size)))
