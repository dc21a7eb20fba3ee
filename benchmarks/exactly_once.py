"""Exactly-once cost: what the idempotency store adds to a batch, against a store with network latency.

moto answers in microseconds, and spends more CPU per call than DynamoDB's client does, so it
shows neither cost. Here the persistence layer's own botocore client serializes every call as
usual, then a ``before-send`` hook answers it after ``latency`` (the answer a table gives for new
events: the conditional write succeeds, nothing is left unprocessed). A design that pays the
store once per record in series shows it. For batches of new events, with sync handlers and with
async handlers that each wait 50 ms, it reports the wall time with idempotency on and off, the
store calls, and the difference in round trips of store latency. Two more rows: sync handlers on a
consumer that declares a follow-up destination and emits nothing (they must cost what the others do),
and sync handlers that each emit one follow-up, sent to a queue that answers after the same latency
(the completion's write, the send, and the write that marks them sent). And sync handlers of a route that
declares a dependency, its breaker closed and read from the store on every batch (no cached state: the
most a batch pays for its breakers).

    python -m benchmarks.exactly_once [--latency-ms 25] [--repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import os
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from typing import Any, cast

from botocore.awsrequest import AWSResponse, HTTPHeaders

from sqs_consumer.budget import Deadline
from sqs_consumer.dependencies.board import BoardWiring, BreakerBoard
from sqs_consumer.dependencies.store import DynamoDBBreakerStore
from sqs_consumer.idempotency.dynamodb import DynamoDBIdempotency, DynamoDBStore
from sqs_consumer.models import HelloEvent
from sqs_consumer.models.followups import FollowUp
from sqs_consumer.models.record import RecordInfo
from sqs_consumer.observability import logger
from sqs_consumer.pipeline import BatchConsumer
from sqs_consumer.pipeline.breakers import BreakerStage
from sqs_consumer.registry import EventRegistry, Route
from sqs_consumer.testing import events as sqs
from sqs_consumer.testing.fakes import FakeContext, InMemoryDLQ

TABLE = "bench-idempotency"
DESTINATION = "next"
DEPENDENCY = "orders-api"
ASYNC_WAIT_SECONDS = 0.05


@dataclass(frozen=True)
class Row:
    size: int
    handlers: str
    on_ms: float
    off_ms: float
    store_calls: int
    latency_ms: float
    # Follow-ups each handler emits; None: no destination declared.
    followups: int | None = None

    @property
    def round_trips(self) -> float:
        """The store's share of the wall time, in round trips of its latency."""
        return max(0.0, self.on_ms - self.off_ms) / self.latency_ms


class _Body:
    def __init__(self, content: bytes) -> None:
        self._content = content

    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        yield self._content


class LatencyStore:
    """Answers each DynamoDB call after ``seconds``, as a table does for new events; counts the calls."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, request: Any, **kwargs: Any) -> AWSResponse:
        with self._lock:
            self.calls += 1
        time.sleep(self.seconds)
        operation = str(request.headers.get("X-Amz-Target", b""))
        body = b"{}"
        if "BatchWriteItem" in operation:
            body = b'{"UnprocessedItems": {}}'
        elif "BatchGetItem" in operation:  # the breakers' items: none written, every breaker closed
            body = b'{"Responses": {"%s": []}}' % TABLE.encode()
        return AWSResponse(request.url, 200, HTTPHeaders.from_pairs([("x-amzn-requestid", "bench")]), _Body(body))


def sync_handler(event: HelloEvent, record: RecordInfo) -> None:
    return None


def emitting_handler(event: HelloEvent, record: RecordInfo) -> None:
    record.emit({"event_type": "hello", "payload": {"name": event.event_id}}, to=DESTINATION)


class LatencySender:
    """A follow-up destination whose queue answers each SendMessageBatch after ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.queue_urls = {DESTINATION: f"https://sqs.us-east-1.amazonaws.com/123456789012/{DESTINATION}"}

    def send(self, followups: Sequence[FollowUp], deadline: Deadline) -> list[Exception | None]:
        if followups:  # its requests go in parallel: one round trip for all
            time.sleep(self.seconds)
        return [None for _ in followups]


async def async_handler(event: HelloEvent, record: RecordInfo) -> None:
    await asyncio.sleep(ASYNC_WAIT_SECONDS)


def new_events(size: int) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    return sqs.event(*(sqs.record(sqs.body("hello", {"name": "n"}, event_id=f"{run}-{i}")) for i in range(size)))


@contextmanager
def quiet() -> Iterator[None]:
    """Fake credentials (nothing leaves the process), EMF and log lines formatted but not shown."""
    for name, value in {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "bench",
                        "AWS_SECRET_ACCESS_KEY": "bench"}.items():  # fmt: skip
        os.environ.setdefault(name, value)
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    previous = handler.setStream(io.StringIO())
    try:
        with redirect_stdout(io.StringIO()):
            yield
    finally:
        handler.setStream(previous)


def measure(
    size: int, handler: Any, latency_ms: float, repeats: int, followups: int | None = None, *, breaker: bool = False
) -> Row:
    hook = LatencyStore(latency_ms / 1000)
    sender = LatencySender(latency_ms / 1000) if followups is not None else None

    def persistence() -> Any:
        layer = DynamoDBStore(TABLE, 86_400)
        layer.client.meta.events.register("before-send.dynamodb", cast(Any, hook))
        return layer

    registry = EventRegistry([Route(HelloEvent, handler, dependencies=[DEPENDENCY] if breaker else ())])
    on = BatchConsumer(registry, InMemoryDLQ(), max_concurrent_records=size,
                       idempotency=DynamoDBIdempotency(persistence), followups=sender,
                       breakers=_breakers(persistence) if breaker else None)  # fmt: skip
    # Without a store a handler emits nothing (follow-ups are stored until sent): the same work, without emitting.
    plain = registry if followups is None else EventRegistry([Route(HelloEvent, sync_handler)])
    off = BatchConsumer(plain, InMemoryDLQ(), max_concurrent_records=size)
    on.handle(new_events(1), FakeContext())  # the client is created once per execution environment
    timings: dict[str, list[float]] = {"on": [], "off": []}
    calls = []
    for _ in range(repeats):
        for name, consumer in (("on", on), ("off", off)):
            event = new_events(size)
            before = hook.calls
            started = time.perf_counter()
            response = consumer.handle(event, FakeContext())
            timings[name].append((time.perf_counter() - started) * 1000)
            assert response == {"batchItemFailures": []}, response
            if name == "on":
                calls.append(hook.calls - before)
    kind = "sync, breaker closed (read every batch)" if breaker else _kind(handler, followups)
    return Row(size, kind, statistics.median(timings["on"]), statistics.median(timings["off"]),
               max(calls), latency_ms, followups)  # fmt: skip


def _breakers(persistence: Callable[[], Any]) -> BreakerStage:
    """The route's breaker in the same table, through the same client; its state never cached."""
    board = BreakerBoard(BoardWiring(lambda: DynamoDBBreakerStore(TABLE, persistence().client), cache_seconds=0))
    return BreakerStage(board)


def _kind(handler: Any, followups: int | None) -> str:
    if followups:
        return f"sync, {followups} follow-up each"
    if followups == 0:
        return "sync, destination declared"
    return "sync" if handler is sync_handler else f"async, {ASYNC_WAIT_SECONDS * 1000:.0f} ms wait"


def run(latency_ms: float, repeats: int) -> list[Row]:
    rows = []
    with quiet():
        for size in (10, 100):
            for handler in (sync_handler, async_handler):
                rows.append(measure(size, handler, latency_ms, repeats))
        rows.append(measure(10, sync_handler, latency_ms, repeats, followups=0))
        rows.append(measure(10, emitting_handler, latency_ms, repeats, followups=1))
        rows.append(measure(10, sync_handler, latency_ms, repeats, breaker=True))
    return rows


def render(rows: list[Row]) -> str:
    lines = [
        f"Exactly-once cost ({rows[0].latency_ms:g} ms per store call; target: <= 4 round trips at 10, <= 8 at 100, "
        "<= 6 at 10 emitting)",
        f"{'batch':>6} {'handlers':<22} {'idempotency on':>15} {'off':>9} {'store calls':>12} {'round trips':>12}",
    ]
    for row in rows:
        lines.append(
            f"{row.size:>6} {row.handlers:<22} {row.on_ms:>12.1f} ms {row.off_ms:>6.1f} ms "
            f"{row.store_calls:>12} {row.round_trips:>12.1f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.exactly_once", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--latency-ms", type=float, default=25.0, help="wait before each store call (default 25)")
    parser.add_argument("--repeats", type=int, default=5, help="batches measured per figure (default 5)")
    args = parser.parse_args(argv)
    if args.latency_ms <= 0 or args.repeats < 1:
        parser.error("--latency-ms must be > 0 and --repeats >= 1")
    print(render(run(args.latency_ms, args.repeats)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
