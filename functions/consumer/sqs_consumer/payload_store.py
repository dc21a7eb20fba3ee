"""Offloaded payloads (payloads.py), read from S3 for the parse stage.

An error no retry can fix is a ``PoisonMessageError`` (the record is quarantined with its pointer
body and size attribute, so a redrive can read it again once the cause is fixed): the object or
bucket is gone, the function may not read it, botocore refuses the bucket the pointer names, or
it is larger than ``max_bytes``. Anything else (throttling, 5xx, timeouts, connections) propagates:
the record is listed and comes back. No more than ``max_bytes`` is ever read, whatever size the
message announces. The consumer never deletes a payload: its message may come back (a retry, a
redrive from the DLQ); the bucket's lifecycle rule expires it.

Memory is a bound (docs/performance.md, "Parsing offloaded payloads"): parsing JSON into Python
objects takes up to ``PARSE_BYTES_PER_PAYLOAD_BYTE`` bytes per byte of text. ``max_payload_for``
derives from the function's memory the largest payload it can parse beside the runtime and the
payloads fetched ahead; the stack refuses a MAX_PAYLOAD_BYTES above it (infra/settings.py), and
the function refuses a payload over it before reading its body.

A batch's payloads are fetched ahead, a few at a time, on budget.py's pool (``BatchPayloads``),
each counted at the most it may hold, never at its announced size, until the batch's deadline;
none runs past its batch.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, wait
from concurrent.futures import TimeoutError as FutureTimeoutError
from functools import partial
from typing import TYPE_CHECKING, Any

from sqs_consumer.budget import Deadline, submit
from sqs_consumer.clients import s3_client
from sqs_consumer.errors import DeadlineReachedError, PoisonMessageError, describe
from sqs_consumer.kinds import QuarantineKind

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
# ...and how many bytes they may hold at once: a share of the function's memory, which Lambda gives
# in MB. Without it (a test, a script), Lambda's default memory size is assumed.
PREFETCH_MEMORY_SHARE = 0.25
DEFAULT_FUNCTION_MEMORY_MB = 128
_MB = 1_048_576
# At a batch's end, how long its reads under way are waited for once their bodies are closed, at most, and
# what is kept of the function's time for returning (the consumer's floor: pipeline/consumer.py).
CLOSE_WAIT_SECONDS = 3.0
CLOSE_FLOOR_MS = 500
# A payload's body is read this much at a time, so that a batch that ends stops its reads at once.
READ_CHUNK_BYTES = 256 * 1024
# Measured (docs/performance.md, "Parsing offloaded payloads"; python -m benchmarks.parse_cost): the
# peak memory json.loads takes per byte of text, on CPython 3.14 as on 3.11. Documents shaped like real
# ones (line items) take about 5; the worst valid JSON (arrays of empty arrays or objects: 3 bytes of
# text, 80 of Python objects each) 26.7. The bound is the worst: any payload within it can be parsed.
PARSE_BYTES_PER_PAYLOAD_BYTE = 28
# The function's resident memory before any payload: CPython, pydantic, botocore and the clients of a
# batch with idempotency and offloaded payloads, plus what a batch holds (measured on CPython 3.14:
# benchmarks.parse_cost; about 80 MB), with some room.
RUNTIME_MB = 96


def function_memory_mb(environ: Mapping[str, str] = os.environ) -> int:
    """The function's memory size, as Lambda gives it (Lambda's default without it)."""
    try:
        return max(int(environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", DEFAULT_FUNCTION_MEMORY_MB)), 0)
    except ValueError:
        return DEFAULT_FUNCTION_MEMORY_MB


def prefetch_budget(environ: Mapping[str, str] = os.environ) -> int:
    """The bytes of a batch's payloads that may be fetched ahead: a share of the function's memory."""
    return int(function_memory_mb(environ) * _MB * PREFETCH_MEMORY_SHARE)


def prefetch_bytes_for(memory_mb: int, max_payload_bytes: int) -> int:
    """The most a batch's payloads fetched ahead hold at once: the budget, or a full window of the largest."""
    return min(int(memory_mb * _MB * PREFETCH_MEMORY_SHARE), PREFETCH_WINDOW * (max_payload_bytes + 1))


def max_payload_for(memory_mb: int) -> int:
    """The largest payload (bytes) a function of ``memory_mb`` parses in the worst case, beside the runtime
    and the payloads fetched ahead: the largest n with RUNTIME_MB + prefetch + 28 n <= its memory."""
    room = (memory_mb - RUNTIME_MB) * _MB
    if room <= 0:
        return 0
    share = int(memory_mb * _MB * PREFETCH_MEMORY_SHARE)
    # The prefetch holds the budget's share, or a full window of the largest payloads when that is less.
    with_budget = (room - share) // PARSE_BYTES_PER_PAYLOAD_BYTE
    with_window = (room - PREFETCH_WINDOW) // (PARSE_BYTES_PER_PAYLOAD_BYTE + PREFETCH_WINDOW)
    return int(max(with_budget, with_window, 0))


def memory_needed_mb(max_payload_bytes: int) -> int:
    """The least memory (MB) in which a function parses a payload of ``max_payload_bytes`` (``max_payload_for``)."""
    return next((mb for mb in range(128, 10_241) if max_payload_for(mb) >= max_payload_bytes), 10_241)


def resident_bytes() -> int | None:
    """The process's resident memory now (Linux, as Lambda runs), None where it cannot be read."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class MemoryShortError(RuntimeError):
    """A payload not parsed in this batch: the memory the batch holds already leaves no room for it.
    Its record is listed and comes back in another batch."""


class _Fetches:
    """A batch's reads: stopped (and their bodies closed) when the batch ends or its deadline passes."""

    def __init__(self, deadline: Deadline) -> None:
        self._deadline = deadline
        self._stopped = threading.Event()
        self._bodies: set[Any] = set()
        self._lock = threading.Lock()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set() or self._deadline.passed

    def opened(self, body: Any) -> None:
        with self._lock:
            if self._stopped.is_set():
                body.close()
                raise DeadlineReachedError("offloaded payload not read: its batch is over")
            self._bodies.add(body)

    def closed(self, body: Any) -> None:
        with self._lock:
            self._bodies.discard(body)

    def stop(self) -> None:
        """No read starts or goes on: the bodies being read are closed under them."""
        with self._lock:
            self._stopped.set()
            bodies, self._bodies = list(self._bodies), set()
        for body in bodies:
            try:
                body.close()
            except Exception:  # noqa: S112  # a body already closed or broken: its read ends all the same
                continue


class S3Payloads:
    """Reads offloaded payloads from whatever bucket a pointer names that the function may read."""

    def __init__(
        self,
        max_bytes: int,
        *,
        prefetch_bytes: int | None = None,
        memory_mb: int | None = None,
        endpoint_url: str | None = None,
        client_factory: Callable[[str | None], S3Client] = s3_client,
    ) -> None:
        self.max_bytes = max_bytes
        # How many bytes of a batch's payloads may be fetched ahead (BatchPayloads).
        self.prefetch_bytes = prefetch_budget() if prefetch_bytes is None else prefetch_bytes
        # The function's memory: a batch parses a further payload only while it holds room for it.
        # None (a test, a script) parses every payload.
        self.memory_bytes = None if memory_mb is None else memory_mb * _MB
        self._endpoint_url = endpoint_url
        self._client_factory = client_factory
        self._client: S3Client | None = None

    def read(self, pointer: PayloadPointer, size: int | None, fetches: _Fetches | None = None) -> bytes:
        """The payload's bytes, ``PoisonMessageError`` when it can never be read, any other error to retry.

        Its real size decides (S3's ContentLength, then the bytes read), never the size announced alone."""
        if size is not None and size > self.max_bytes:
            raise self._too_large(pointer, size, "its size attribute says")
        if fetches is not None and fetches.stopped:
            raise DeadlineReachedError(f"offloaded payload {pointer} not read: its batch is over")
        from botocore.exceptions import ClientError  # noqa: PLC0415  # deferred: clients.py

        try:
            response = self._s3().get_object(Bucket=pointer.bucket, Key=pointer.key)
        except ClientError as exc:
            raise _classified(exc, pointer) from exc
        except _refused_by_botocore() as exc:
            reason = (
                f"resembles an S3 payload pointer, but botocore refuses its bucket: {describe(exc, typed=False)[:300]}"
            )
            raise PoisonMessageError(QuarantineKind.INVALID_ENVELOPE, reason) from None
        body = response["Body"]
        if fetches is not None:
            fetches.opened(body)
        try:
            length = response.get("ContentLength")
            if length is not None and length > self.max_bytes:
                raise self._too_large(pointer, length, "S3 says")
            chunks, taken = [], 0
            while taken <= self.max_bytes:
                if fetches is not None and fetches.stopped:
                    raise DeadlineReachedError(f"offloaded payload {pointer} not read: its batch is over")
                chunk = body.read(min(READ_CHUNK_BYTES, self.max_bytes + 1 - taken))
                if not chunk:
                    break
                chunks.append(chunk)
                taken += len(chunk)
        finally:
            if fetches is not None:
                fetches.closed(body)
            body.close()
        if taken > self.max_bytes:
            raise self._too_large(pointer, taken, "more than that was read:")
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _too_large(self, pointer: PayloadPointer, size: int, source: str) -> PoisonMessageError:
        return PoisonMessageError(
            QuarantineKind.PAYLOAD_TOO_LARGE,
            f"offloaded payload {pointer}: {source} {size} bytes, over MAX_PAYLOAD_BYTES ({self.max_bytes}), the "
            "most the function parses within its memory",
        )

    def _s3(self) -> S3Client:
        if self._client is None:
            self._client = self._client_factory(self._endpoint_url)
        return self._client


def decoded(pointer: PayloadPointer, data: bytes) -> str:
    """A payload's text, or poison when it is not UTF-8."""
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        reason = f"offloaded payload {pointer} is not UTF-8 text: {describe(exc, typed=False)}"
        raise PoisonMessageError(QuarantineKind.PAYLOAD_NOT_UTF8, reason) from None


def _refused_by_botocore() -> tuple[type[Exception], ...]:
    """What botocore raises before any request for a bucket it cannot address: a bad name, another
    service's ARN, a Multi-Region Access Point (SigV4A needs the CRT, absent from the runtime)."""
    from botocore import exceptions  # noqa: PLC0415  # deferred: clients.py

    return (exceptions.ParamValidationError, exceptions.MissingDependencyException,
            exceptions.UnsupportedS3ArnError, exceptions.UnsupportedS3AccesspointConfigurationError,
            exceptions.UnsupportedS3ConfigurationError, exceptions.UnsupportedOutpostResourceError,
            exceptions.InvalidS3AddressingStyleError)  # fmt: skip


def _classified(exc: ClientError, pointer: PayloadPointer) -> Exception:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    if code in _MISSING:
        return PoisonMessageError(QuarantineKind.PAYLOAD_MISSING, f"offloaded payload {pointer} is missing: {code} "
                                  f"(bucket {pointer.bucket!r}, key {pointer.key!r})")  # fmt: skip
    if code in _UNREADABLE:
        where = f"bucket {pointer.bucket!r}, key {pointer.key!r}"
        reason = (f"offloaded payload {pointer} cannot be read by the function: {code} ({where}; in a bucket the "
                  "function may not list, S3 also answers AccessDenied for a missing key)")  # fmt: skip
        return PoisonMessageError(QuarantineKind.PAYLOAD_UNREADABLE, reason)
    return exc


class BatchPayloads:
    """One batch's payloads: fetched ahead in batch order, at most ``PREFETCH_WINDOW`` and ``budget_bytes``
    at a time (the payload being parsed counted in), until ``deadline``. Each is counted at the most it may
    hold (``max_bytes``): an announced size is the producer's word, not a bound. A payload the budget cannot
    hold is fetched when its record is parsed; every read, ahead or not, waits no later than ``deadline``.

    A fetch given up on (its deadline passed, its record parsed without it) keeps its place and bytes until
    its GET has ended; none starts after the deadline; ``close`` ends those still running with the batch."""

    def __init__(self, store: S3Payloads, deadline: Deadline, budget_bytes: int) -> None:
        self._store = store
        self._deadline = deadline
        self._budget = budget_bytes
        self._cost = store.max_bytes + 1  # the most a read holds: it stops one byte past the bound
        self._fetches = _Fetches(deadline)
        self._queued: deque[tuple[str, PayloadPointer, int | None]] = deque()
        self._fetching: dict[str, tuple[PayloadPointer, Future[bytes]]] = {}
        self._abandoned: list[Future[bytes]] = []  # given up on, still running: counted until they end
        self._parsing = 0  # the bytes counted for the payload being parsed
        self._parsed_one = False
        self._passed: set[str] = set()

    def prefetch(self, wanted: Iterable[tuple[str, PayloadPointer, int | None]]) -> None:
        """Start fetching the payloads of these records (message id, pointer, announced size)."""
        self._queued.extend(wanted)
        self._fill()

    def read(self, message_id: str, pointer: PayloadPointer, size: int | None) -> bytes:
        """A record's payload: the one fetched ahead if it was, or fetched now, by the deadline either way."""
        future = self._take(message_id, pointer)
        if future is None:
            if self._fetches.stopped:
                raise DeadlineReachedError(f"offloaded payload {pointer} not fetched: the function is close to its "
                                           "timeout")  # fmt: skip
            future = submit(partial(self._store.read, pointer, size, self._fetches))
        try:
            data = future.result(timeout=self._deadline.seconds_left())
        except FutureTimeoutError:
            self._abandon(future)
            reason = f"offloaded payload {pointer} not fetched before the function's timeout"
            raise DeadlineReachedError(reason) from None
        finally:
            self._fill()  # its place is free (or still held, if given up on while running): the next may start
        self._admit(pointer, len(data))
        return data

    def _admit(self, pointer: PayloadPointer, size: int) -> None:
        """Parse a further payload of this batch only if the memory held leaves room for its worst case; the
        first is always parsed (the stack's rule keeps room for one at the bound beside the runtime)."""
        limit = self._store.memory_bytes
        first, self._parsed_one = not self._parsed_one, True
        if limit is None or first:
            return
        held = resident_bytes()
        need = PARSE_BYTES_PER_PAYLOAD_BYTE * size
        if held is not None and held + need > limit:
            raise MemoryShortError(
                f"offloaded payload {pointer} ({size} bytes) not parsed in this batch: parsing may take {need} "
                f"bytes beside the {held} the function holds, over its memory ({limit}); it comes back in another"
            )

    def _take(self, message_id: str, pointer: PayloadPointer) -> Future[bytes] | None:
        """The record's fetch ahead, if there is one for its pointer; its bytes now counted as parsed."""
        self._passed.add(message_id)
        fetching = self._fetching.pop(message_id, None)
        self._parsing = self._cost
        if fetching is not None and fetching[0] != pointer:
            self._abandon(fetching[1])
            return None
        return None if fetching is None else fetching[1]

    def passed(self, message_id: str) -> None:
        """The record's parse is over: its payload, read or not, no longer holds a place or its bytes."""
        self._passed.add(message_id)
        unread = self._fetching.pop(message_id, None)
        if unread is not None:
            self._abandon(unread[1])
        self._parsing = 0
        self._fill()

    def close(self) -> None:
        """The batch is over: nothing more starts, the reads under way stop (their bodies closed), and they
        are waited for, up to CLOSE_WAIT_SECONDS and never into the last CLOSE_FLOOR_MS of the function's
        time. One still waiting for S3's answer then ends at its timeout without reading a byte."""
        self._queued.clear()
        running = [future for _, future in self._fetching.values()] + self._abandoned
        self._fetching.clear()
        self._fetches.stop()
        running = [future for future in running if not future.cancel()]
        if running:  # closed under them, they end at once; a GET still waiting for its headers, within its timeout
            left = Deadline(self._deadline.remaining_ms, CLOSE_FLOOR_MS).seconds_left()
            wait(running, timeout=min(CLOSE_WAIT_SECONDS, left))
        self._abandoned = [future for future in running if not future.done()]

    @property
    def running(self) -> int:
        """How many of the batch's reads are still under way (ahead, or given up on)."""
        return sum(not future.done() for _, future in self._fetching.values()) + len(self._reaped())

    def _abandon(self, future: Future[bytes]) -> None:
        if not future.cancel():  # under way: it keeps its place and bytes until its GET ends
            self._abandoned.append(future)

    def _reaped(self) -> list[Future[bytes]]:
        self._abandoned = [future for future in self._abandoned if not future.done()]
        return self._abandoned

    def _fill(self) -> None:
        if self._fetches.stopped:
            self._queued.clear()  # past the deadline nothing starts: the parse says what became of each
            return
        while self._queued and len(self._fetching) + len(self._reaped()) < PREFETCH_WINDOW:
            message_id, pointer, size = self._queued[0]
            if message_id in self._passed or message_id in self._fetching or self._cost > self._budget:
                self._queued.popleft()  # parsed already, or fetched when its record is parsed
                continue
            if size is not None and size > self._store.max_bytes:
                self._queued.popleft()  # refused by its size attribute, without a GET
                continue
            held = (len(self._fetching) + len(self._abandoned)) * self._cost + self._parsing
            if held + self._cost > self._budget:
                return  # it starts when enough of those before it are parsed
            self._queued.popleft()
            self._fetching[message_id] = (pointer, submit(partial(self._store.read, pointer, size, self._fetches)))
