"""Offloaded payloads (payloads.py), read from S3 for the parse stage.

An error no retry can fix is a ``PoisonMessageError`` (the record is quarantined with its pointer
body and size attribute, so a redrive can read it again once the cause is fixed): the object or
bucket is gone, the function may not read it, it is larger than ``max_bytes``, or it is not UTF-8.
Anything else (throttling, 5xx, timeouts, connections) propagates: the record is listed and comes
back. No more than ``max_bytes`` is ever read. The consumer never deletes a payload: its message
may come back (a retry, a redrive from the DLQ); the bucket's lifecycle rule expires it.

A batch's payloads are fetched ahead, a few at a time, on budget.py's pool (``BatchPayloads``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from functools import partial
from typing import TYPE_CHECKING

from sqs_consumer.budget import Deadline, submit
from sqs_consumer.clients import s3_client
from sqs_consumer.errors import DeadlineReachedError, PoisonMessageError
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


class S3Payloads:
    """Reads offloaded payloads from whatever bucket a pointer names that the function may read."""

    def __init__(
        self,
        max_bytes: int,
        *,
        endpoint_url: str | None = None,
        client_factory: Callable[[str | None], S3Client] = s3_client,
    ) -> None:
        self._max_bytes = max_bytes
        self._endpoint_url = endpoint_url
        self._client_factory = client_factory
        self._client: S3Client | None = None

    def read(self, pointer: PayloadPointer, size: int | None) -> str:
        """The payload's text, ``PoisonMessageError`` when it can never be read, any other error to retry."""
        if size is not None and size > self._max_bytes:
            raise self._too_large(pointer, size, "its size attribute says")
        from botocore.exceptions import ClientError  # noqa: PLC0415  # deferred: clients.py

        try:
            response = self._s3().get_object(Bucket=pointer.bucket, Key=pointer.key)
        except ClientError as exc:
            raise _classified(exc, pointer) from exc
        body = response["Body"]
        try:
            length = response.get("ContentLength")
            if length is not None and length > self._max_bytes:
                raise self._too_large(pointer, length, "S3 says")
            data = body.read(self._max_bytes + 1)
        finally:
            body.close()
        if len(data) > self._max_bytes:
            raise self._too_large(pointer, len(data), "more than that was read:")
        try:
            return data.decode()
        except UnicodeDecodeError as exc:
            reason = f"offloaded payload {pointer} is not UTF-8 text: {exc}"
            raise PoisonMessageError(PAYLOAD_NOT_UTF8, reason) from None

    def _too_large(self, pointer: PayloadPointer, size: int, source: str) -> PoisonMessageError:
        return PoisonMessageError(
            PAYLOAD_TOO_LARGE,
            f"offloaded payload {pointer}: {source} {size} bytes, over MAX_PAYLOAD_BYTES ({self._max_bytes})",
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
        return PoisonMessageError(PAYLOAD_UNREADABLE, f"offloaded payload {pointer} cannot be read by the function: "
                                  f"{code} (bucket {pointer.bucket!r}, key {pointer.key!r}; without s3:ListBucket, "
                                  "S3 also answers AccessDenied for a missing key)")  # fmt: skip
    return exc


class BatchPayloads:
    """One batch's payloads: fetched ahead, ``PREFETCH_WINDOW`` at a time, in batch order, until ``deadline``."""

    def __init__(self, store: S3Payloads, deadline: Deadline) -> None:
        self._store = store
        self._deadline = deadline
        self._queued: deque[tuple[str, PayloadPointer, int | None]] = deque()
        self._fetching: dict[str, tuple[PayloadPointer, Future[str]]] = {}

    def prefetch(self, wanted: Iterable[tuple[str, PayloadPointer, int | None]]) -> None:
        """Start fetching the payloads of these records (message id, pointer, announced size)."""
        self._queued.extend(wanted)
        self._fill()

    def read(self, message_id: str, pointer: PayloadPointer, size: int | None) -> str:
        """A record's payload: the one fetched ahead if it was, or fetched now."""
        fetching = self._fetching.pop(message_id, None)
        try:
            if fetching is None or fetching[0] != pointer:
                return self._store.read(pointer, size)
            return fetching[1].result(timeout=self._deadline.seconds_left())
        except FutureTimeoutError:
            reason = f"offloaded payload {pointer} not fetched before the function's timeout"
            raise DeadlineReachedError(reason) from None
        finally:
            self._fill()  # the next one starts as this one is done with

    def _fill(self) -> None:
        while self._queued and len(self._fetching) < PREFETCH_WINDOW:
            message_id, pointer, size = self._queued.popleft()
            if message_id not in self._fetching:
                self._fetching[message_id] = (pointer, submit(partial(self._store.read, pointer, size)))
