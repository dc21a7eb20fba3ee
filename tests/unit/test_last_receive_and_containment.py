"""What reaches the DLQ says why; nothing a handler raises escapes its record.

- a record that fails on its last allowed receive is quarantined with the last error;
- a record that never ran (near the timeout, or behind a failed record of its FIFO group)
  is quarantined on its last receive with the reason it never ran;
- a handler raising a BaseException (CancelledError...) fails its record alone, and no
  task of the invocation runs on into the next one.
"""

from __future__ import annotations

import asyncio
import json
import types
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from sqs_consumer.errors import MAX_DESCRIPTION_CHARS, NonRetryableError, describe
from sqs_consumer.models import HelloEvent
from sqs_consumer.models.record import RecordInfo
from sqs_consumer.observability import BatchReport, Outcome
from sqs_consumer.pipeline import BatchConsumer
from sqs_consumer.pipeline import batch as batch_module
from sqs_consumer.registry import EventRegistry, Route
from sqs_consumer.routes import REGISTRY
from sqs_consumer.testing import events as sqs
from sqs_consumer.testing.fakes import FakeClock, FakeContext, InMemoryDLQ, InMemoryIdempotency
from tests.conftest import failed_ids
from tests.support.fakes import slow_registry

MAX_RECEIVES = 4


def failing(receive_count: int, **fields) -> dict:
    return sqs.record(sqs.body("hello", {"name": "x", "simulate": "fail"}, **fields), receive_count=receive_count)


@pytest.fixture
def consumer(quarantine: InMemoryDLQ) -> BatchConsumer:
    return BatchConsumer(REGISTRY, quarantine, time_reserve_ms=5_000, max_receive_count=MAX_RECEIVES)


def test_failure_before_the_last_receive_is_retried(consumer, quarantine):
    record = failing(MAX_RECEIVES - 1)
    assert failed_ids(consumer.handle(sqs.event(record), FakeContext())) == [record["messageId"]]
    assert quarantine.sent == []


def test_failure_on_the_last_receive_is_quarantined_with_the_last_error(consumer, quarantine):
    # GIVEN a record on its last allowed receive whose handler still fails
    record = failing(MAX_RECEIVES)

    # WHEN it is handled
    response = consumer.handle(sqs.event(record), FakeContext())

    # THEN it is acknowledged after the DLQ took it, with the last error as its reason
    assert failed_ids(response) == []
    [sent] = quarantine.sent
    assert sent.kind == "retries_exhausted"
    assert "4 receive(s)" in sent.reason
    assert "RetryableError" in sent.reason or "simulated" in sent.reason
    assert sent.receive_count == MAX_RECEIVES
    assert sent.event_type == "hello"


def test_failure_on_the_last_receive_stays_listed_when_the_dlq_refuses_it():
    consumer = BatchConsumer(REGISTRY, InMemoryDLQ(fail=True), max_receive_count=MAX_RECEIVES)
    record = failing(MAX_RECEIVES)
    assert failed_ids(consumer.handle(sqs.event(record), FakeContext())) == [record["messageId"]]


def test_without_max_receive_count_the_redrive_stays_in_charge(quarantine):
    consumer = BatchConsumer(REGISTRY, quarantine)
    record = failing(MAX_RECEIVES)
    assert failed_ids(consumer.handle(sqs.event(record), FakeContext())) == [record["messageId"]]
    assert quarantine.sent == []


def test_record_skipped_near_the_timeout_on_its_last_receive_is_quarantined(quarantine):
    # GIVEN a first record whose handler takes 16 of the 20 s left, so that the reserve stops the two behind
    # it: one early, one on its last receive
    clock = FakeClock()
    consumer = BatchConsumer(slow_registry(clock, 16), quarantine, time_reserve_ms=5_000,
                             max_receive_count=MAX_RECEIVES, timer=clock)  # fmt: skip
    ran = sqs.record(sqs.body("hello"))
    early = sqs.record(sqs.body("hello"), receive_count=1)
    last = sqs.record(sqs.body("document.processed", {"document_id": "d"}), receive_count=MAX_RECEIVES)
    context = FakeContext(remaining_ms=20_000, clock=clock)

    # WHEN the batch is handled
    response = consumer.handle(sqs.event(ran, early, last), context)

    # THEN the early one returns for another try, the last one reaches the DLQ saying it never ran
    assert failed_ids(response) == [early["messageId"]]
    [sent] = quarantine.sent
    assert sent.source_message_id == last["messageId"]
    assert sent.kind == "not_started"
    assert "close to its timeout" in sent.reason
    assert sent.event_type == "document.processed"


def test_fifo_record_behind_a_failed_one_on_its_last_receive_is_quarantined(consumer, quarantine):
    # GIVEN a FIFO group whose first record fails, the second being on its last receive
    first = sqs.record(sqs.body("hello", {"name": "a", "simulate": "fail"}), group_id="g", sequence_number=1)
    behind = sqs.record(sqs.body("hello"), group_id="g", sequence_number=2, receive_count=MAX_RECEIVES)
    other = sqs.record(sqs.body("hello"), group_id="g", sequence_number=3, receive_count=1)

    response = consumer.handle(sqs.event(first, behind, other), FakeContext())

    # THEN the failed one and the one still having receives are listed; the last-receive one is quarantined
    assert failed_ids(response) == [first["messageId"], other["messageId"]]
    [sent] = quarantine.sent
    assert sent.source_message_id == behind["messageId"]
    assert sent.kind == "not_started"
    assert "message group g" in sent.reason


def test_skipped_records_are_counted_under_their_own_type(quarantine, monkeypatch):
    consumer = BatchConsumer(REGISTRY, quarantine, time_reserve_ms=5_000)
    records = [sqs.record(sqs.body("document.processed", {"document_id": "d"})), sqs.record("not json")]
    run_report: list[BatchReport] = []

    class SpiedReport(BatchReport):
        def __init__(self) -> None:
            super().__init__()
            run_report.append(self)

    monkeypatch.setattr(batch_module, "BatchReport", SpiedReport)
    consumer.handle(sqs.event(*records), FakeContext(remaining_ms=1_000))

    report = run_report[0]
    assert report._stats["document.processed"].counts[Outcome.SKIPPED] == 1
    assert report._stats["unrecognized"].counts[Outcome.SKIPPED] == 1


def test_quarantines_of_a_batch_are_sent_together(consumer, quarantine):
    records = [sqs.record("not json") for _ in range(25)]
    assert failed_ids(consumer.handle(sqs.event(*records), FakeContext())) == []
    assert quarantine.calls == [25]


class Cancelled:
    """Handlers that raise BaseExceptions which are not process exits."""

    def __init__(self) -> None:
        self.ran: list[str] = []

    def sync(self, event: HelloEvent, record: RecordInfo) -> None:
        self.ran.append(event.payload.name)
        if event.payload.name == "cancel":
            raise asyncio.CancelledError
        if event.payload.name == "generator-exit":
            raise GeneratorExit

    async def async_(self, event: HelloEvent, record: RecordInfo) -> None:
        if event.payload.name == "cancel":
            raise asyncio.CancelledError
        if event.payload.name == "fire-and-forget":
            asyncio.get_running_loop().create_task(self._late(event.payload.name))
            return
        await asyncio.sleep(0.3 if event.payload.name == "next" else 0)
        self.ran.append(event.payload.name)

    async def _late(self, name: str) -> None:
        await asyncio.sleep(0.2)
        self.ran.append(f"late:{name}")


@pytest.mark.parametrize("flavour", ["sync", "async_"])
def test_base_exception_in_a_handler_fails_its_record_only(flavour):
    handlers = Cancelled()
    consumer = BatchConsumer(EventRegistry([Route(HelloEvent, getattr(handlers, flavour))]), InMemoryDLQ())
    ok = sqs.record(sqs.body("hello", {"name": "ok"}))
    cancelled = sqs.record(sqs.body("hello", {"name": "cancel"}))
    after = sqs.record(sqs.body("hello", {"name": "after"}))

    response = consumer.handle(sqs.event(ok, cancelled, after), FakeContext())

    assert failed_ids(response) == [cancelled["messageId"]]
    assert {"ok", "after"} <= set(handlers.ran)


def test_generator_exit_in_a_sync_handler_fails_its_record_only():
    handlers = Cancelled()
    consumer = BatchConsumer(EventRegistry([Route(HelloEvent, handlers.sync)]), InMemoryDLQ())
    record = sqs.record(sqs.body("hello", {"name": "generator-exit"}))
    assert failed_ids(consumer.handle(sqs.event(record), FakeContext())) == [record["messageId"]]


def test_process_exits_are_not_swallowed():
    def exit_now(event: HelloEvent, record: RecordInfo) -> None:
        raise SystemExit(3)

    consumer = BatchConsumer(EventRegistry([Route(HelloEvent, exit_now)]), InMemoryDLQ())
    with pytest.raises(SystemExit):
        consumer.handle(sqs.event(sqs.record(sqs.body("hello"))), FakeContext())


def test_cancelled_record_releases_its_idempotency_record():
    store = InMemoryIdempotency()
    handlers = Cancelled()
    consumer = BatchConsumer(EventRegistry([Route(HelloEvent, handlers.async_)]), InMemoryDLQ(), idempotency=store)
    consumer.handle(sqs.event(sqs.record(sqs.body("hello", {"name": "cancel"}, event_id="e-1"))), FakeContext())
    assert store.released == ["e-1"]
    assert "e-1" not in store.records


def test_no_task_of_an_invocation_runs_during_the_next_one():
    # GIVEN an async handler that leaves a task behind on the loop
    handlers = Cancelled()
    consumer = BatchConsumer(EventRegistry([Route(HelloEvent, handlers.async_)]), InMemoryDLQ())
    consumer.handle(sqs.event(sqs.record(sqs.body("hello", {"name": "fire-and-forget"}))), FakeContext())

    # WHEN the next invocation runs long enough for that task to have finished
    slow = sqs.record(sqs.body("hello", {"name": "next"}))
    consumer.handle(sqs.event(slow), FakeContext())
    asyncio.set_event_loop(None)

    # THEN the leftover task was cancelled at the end of its own invocation
    assert "late:fire-and-forget" not in handlers.ran
    assert consumer._runner._loop is None or not [t for t in asyncio.all_tasks(consumer._runner._loop) if not t.done()]


def test_a_huge_unknown_type_is_logged_in_bounded_lines(consumer, quarantine, logs):
    record = sqs.record(sqs.body("t" * 300_000, {}))

    consumer.handle(sqs.event(record), FakeContext())

    assert quarantine.message_ids == [record["messageId"]]
    assert max(len(json.dumps(line)) for line in logs.lines) < 4_096


class Unprintable(Exception):
    """An exception whose ``__str__`` itself raises (a bug in a library's exception class)."""

    def __str__(self) -> str:
        raise ValueError("no text for this one")


class Opaque(Unprintable):
    """Neither ``__str__`` nor ``__repr__`` works."""

    def __repr__(self) -> str:
        raise ValueError("no repr either")


def test_describe_falls_back_to_repr_then_to_the_type_name():
    assert describe(RuntimeError("transient")) == "RuntimeError: transient"
    assert describe(RuntimeError()) == "RuntimeError"
    assert describe(NonRetryableError("gone upstream"), typed=False) == "gone upstream"
    assert describe(Unprintable("x")) == "Unprintable('x')"
    assert describe(Opaque("x")) == "Opaque"


def test_describe_is_bounded_and_plain_text():
    class Returns(Exception):
        def __init__(self, text: object) -> None:
            self.text = text

        def __str__(self) -> str:
            return self.text  # type: ignore[return-value]

    class Loud(str):
        def __len__(self) -> int:
            raise RuntimeError("no length")

    assert len(describe(RuntimeError("x" * 1_000_000))) <= MAX_DESCRIPTION_CHARS
    assert describe(Returns(42)) == "Returns(42)"  # __str__ returned no text: the repr
    described = describe(Returns(Loud("loud")))
    assert described == "Returns: loud" and type(described) is str


@pytest.mark.parametrize("fifo", [False, True], ids=["standard", "fifo"])
@pytest.mark.parametrize(
    ("raised", "receive_count"),
    [(Unprintable, 1), (Opaque, 1), (Unprintable, MAX_RECEIVES)],
    ids=["listed", "opaque", "last"],
)
def test_an_exception_whose_str_raises_fails_its_record_only(fifo, raised, receive_count, quarantine):
    # GIVEN a handler raising an exception that cannot be turned into text, beside a record that succeeds
    ran: list[str] = []

    def handle(event: HelloEvent, record: RecordInfo) -> None:
        ran.append(event.payload.name)
        if event.payload.name == "bad":
            raise raised("boom")

    consumer = BatchConsumer(EventRegistry([Route(HelloEvent, handle)]), quarantine, max_receive_count=MAX_RECEIVES)
    bad = sqs.record(sqs.body("hello", {"name": "bad"}), receive_count=receive_count, group_id="g" if fifo else None)
    ok = sqs.record(sqs.body("hello", {"name": "ok"}), group_id="h" if fifo else None)

    # WHEN the batch is handled
    response = consumer.handle(sqs.event(bad, ok), FakeContext())

    # THEN only its record failed (listed, or quarantined on its last receive with the type as its reason)
    assert ran == ["bad", "ok"]
    if receive_count == MAX_RECEIVES:
        assert failed_ids(response) == []
        [sent] = quarantine.sent
        assert sent.kind == "retries_exhausted" and raised.__name__ in sent.reason
    else:
        assert failed_ids(response) == [bad["messageId"]]


class UnprintableStore(InMemoryIdempotency):
    """A store adapter that raises unprintable exceptions instead of answering."""

    def __init__(self, fail_on: str) -> None:
        super().__init__()
        self.fail_on = fail_on

    def claim(self, events, remaining_ms, deadline):
        if self.fail_on == "claim":
            raise Unprintable("claim")
        return super().claim(events, remaining_ms, deadline)

    def settle(self, succeeded, released, deadline, followups=None):
        if self.fail_on == "settle":
            raise Unprintable("settle")
        return super().settle(succeeded, released, deadline, followups)


class UnprintableQuarantine(InMemoryDLQ):
    def send_batch(self, messages, deadline):
        raise Unprintable("dlq")


@pytest.mark.parametrize("where", ["claim", "settle", "dlq"])
def test_an_adapter_raising_an_unprintable_exception_fails_no_batch(where, logs):
    # GIVEN an adapter (store or DLQ) that raises an exception whose __str__ raises
    store = UnprintableStore(where) if where != "dlq" else InMemoryIdempotency()
    quarantine = UnprintableQuarantine() if where == "dlq" else InMemoryDLQ()
    consumer = BatchConsumer(REGISTRY, quarantine, idempotency=store, time_reserve_ms=1_000)
    ok = sqs.record(sqs.body("hello"))
    failing = sqs.record(sqs.body("hello", {"name": "x", "simulate": "fail"}))
    poison = sqs.record("not json")

    # WHEN a batch is handled
    response = consumer.handle(sqs.event(ok, failing, poison), FakeContext(remaining_ms=3_000))

    # THEN the records it concerns are listed, the failure is logged with the exception's type, and the
    # batch answers
    expected = {
        "claim": [ok["messageId"], failing["messageId"]],  # nothing ran: retried; the poison needs no claim
        "settle": [failing["messageId"]],
        "dlq": [failing["messageId"], poison["messageId"]],
    }[where]
    assert failed_ids(response) == expected
    assert any("Unprintable" in str(line.get("error")) for line in logs.lines if line["level"] in {"WARNING", "ERROR"})


class Returns:
    """``hello`` handlers returning what the name asks for: none of them is None or an awaitable."""

    def __init__(self) -> None:
        self.ran: list[str] = []
        self.pool = ThreadPoolExecutor(max_workers=1)

    def handle(self, event: HelloEvent, record: RecordInfo) -> Any:
        name = event.payload.name
        if name == "generator":
            return self._generator(name)
        if name == "async-generator":
            return self._async_generator(name)
        if name == "future":
            return self.pool.submit(self.ran.append, name)
        if name == "number":
            return 42
        self.ran.append(name)
        return None

    def _generator(self, name: str) -> Iterator[None]:
        self.ran.append(name)
        yield None

    async def _async_generator(self, name: str) -> AsyncIterator[None]:
        self.ran.append(name)
        yield None


@pytest.mark.parametrize("fifo", [False, True], ids=["standard", "fifo"])
@pytest.mark.parametrize("returned", ["generator", "async-generator", "future", "number"])
def test_a_handler_returning_neither_none_nor_an_awaitable_fails_its_record_only(fifo, returned):
    # GIVEN a handler that returns a generator, an async generator, a concurrent.futures.Future or a number
    handlers, store = Returns(), InMemoryIdempotency()
    consumer = BatchConsumer(EventRegistry([Route(HelloEvent, handlers.handle)]), InMemoryDLQ(), idempotency=store)
    odd = sqs.record(sqs.body("hello", {"name": returned}, event_id="odd"), group_id="g" if fifo else None)
    ok = sqs.record(sqs.body("hello", {"name": "ok"}, event_id="ok"), group_id="h" if fifo else None)

    # WHEN the batch is handled
    response = consumer.handle(sqs.event(odd, ok), FakeContext())
    handlers.pool.shutdown()

    # THEN its record is listed (never deleted as if it succeeded); the other one succeeded
    assert failed_ids(response) == [odd["messageId"]]
    assert store.completed == ["ok"]


def test_a_handler_returning_a_generator_on_its_last_receive_is_quarantined_saying_so(quarantine):
    handlers = Returns()
    consumer = BatchConsumer(EventRegistry([Route(HelloEvent, handlers.handle)]), quarantine,
                             max_receive_count=MAX_RECEIVES)  # fmt: skip
    record = sqs.record(sqs.body("hello", {"name": "generator"}), receive_count=MAX_RECEIVES)

    assert failed_ids(consumer.handle(sqs.event(record), FakeContext())) == []

    [sent] = quarantine.sent
    assert sent.kind == "retries_exhausted"
    assert "HandlerReturnError" in sent.reason and "generator" in sent.reason


class Hangs:
    """``hello`` handlers: "hang" never finishes (and "stubborn" ignores its cancellation too); others do."""

    def __init__(self) -> None:
        self.finished: list[str] = []
        self.cancelled: list[str] = []

    async def handle(self, event: HelloEvent, record: RecordInfo) -> None:
        name = event.payload.name
        try:
            if name in {"hang", "stubborn"}:
                await asyncio.Event().wait()
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            self.cancelled.append(name)
            if name != "stubborn":
                raise
            await asyncio.Event().wait()  # ignores its cancellation: waits again
        self.finished.append(name)


def hanging_batch(fifo: bool, receive_count: int = 1, hang: str = "hang") -> list[dict]:
    group = (lambda name: {"group_id": name}) if fifo else (lambda name: {})
    return [
        sqs.record(sqs.body("hello", {"name": hang}, event_id="hung"), receive_count=receive_count, **group("g")),
        sqs.record(sqs.body("hello", {"name": "behind"}, event_id="behind"), **group("g")),
        sqs.record(sqs.body("hello", {"name": "other"}, event_id="other"), **group("h")),
    ]


@pytest.mark.parametrize("fifo", [False, True], ids=["standard", "fifo"])
@pytest.mark.parametrize("hang", ["hang", "stubborn"])
def test_an_async_handler_past_its_route_timeout_is_cancelled_and_listed(fifo, hang):
    # GIVEN a route whose handlers get 50 ms, and a handler that never finishes (or ignores its cancellation)
    handlers, store = Hangs(), InMemoryIdempotency()
    consumer = BatchConsumer(EventRegistry([Route(HelloEvent, handlers.handle, timeout_seconds=0.05)]),
                             InMemoryDLQ(), idempotency=store)  # fmt: skip
    hung, behind, other = hanging_batch(fifo, hang=hang)

    # WHEN the batch is handled (with 30 s left)
    response = consumer.handle(sqs.event(hung, behind, other), FakeContext())

    # THEN the hung record alone is listed (on FIFO, with the rest of its group, unstarted); it was cancelled;
    # its claim is kept until it expires (it may still be running), never released as if it had not run
    expected = [hung["messageId"], behind["messageId"]] if fifo else [hung["messageId"]]
    assert failed_ids(response) == expected
    assert handlers.cancelled == [hang]
    assert store.records["hung"][0] == "INPROGRESS" and "hung" not in store.released
    assert store.completed == ["other"] if fifo else sorted(store.completed) == ["behind", "other"]


def test_an_async_handler_without_a_route_timeout_is_cut_off_within_the_time_reserve():
    # GIVEN a route with no timeout of its own, and a batch with 1.2 s left, 1 s of it the time reserve
    handlers = Hangs()
    consumer = BatchConsumer(EventRegistry([Route(HelloEvent, handlers.handle)]), InMemoryDLQ(),
                             time_reserve_ms=1_000)  # fmt: skip
    hung, behind, other = hanging_batch(fifo=False)
    context = FakeContext(remaining_ms=1_200)

    # WHEN the batch is handled
    response = consumer.handle(sqs.event(hung, behind, other), context)

    # THEN the hung handler was cancelled before the part of the reserve kept for returning, and listed
    assert failed_ids(response) == [hung["messageId"]]
    assert handlers.cancelled == ["hang"]
    assert sorted(handlers.finished) == ["behind", "other"]


def test_an_async_handler_timed_out_on_its_last_receive_is_quarantined_saying_it_timed_out(quarantine):
    handlers = Hangs()
    consumer = BatchConsumer(EventRegistry([Route(HelloEvent, handlers.handle, timeout_seconds=0.05)]), quarantine,
                             max_receive_count=MAX_RECEIVES)  # fmt: skip
    hung, *_ = hanging_batch(fifo=False, receive_count=MAX_RECEIVES)

    assert failed_ids(consumer.handle(sqs.event(hung), FakeContext())) == []

    [sent] = quarantine.sent
    assert sent.kind == "retries_exhausted"
    assert "timed out" in sent.reason and "0.05 s" in sent.reason


def test_a_route_timeout_must_be_positive():
    with pytest.raises(ValueError, match="timeout_seconds"):
        Route(HelloEvent, Hangs().handle, timeout_seconds=0)


def test_any_awaitable_a_handler_returns_is_awaited():
    # GIVEN handlers returning an object with __await__ and a generator-based coroutine
    ran: list[str] = []

    class Awaitable:
        def __await__(self) -> Iterator[None]:
            yield from asyncio.sleep(0).__await__()
            ran.append("__await__")

    @types.coroutine
    def generator_based() -> Iterator[None]:
        yield
        ran.append("generator-based")

    def handle(event: HelloEvent, record: RecordInfo) -> Any:
        return Awaitable() if event.payload.name == "__await__" else generator_based()

    consumer = BatchConsumer(EventRegistry([Route(HelloEvent, handle)]), InMemoryDLQ())
    names = ["__await__", "generator-based"]
    records = [sqs.record(sqs.body("hello", {"name": name})) for name in names]

    # WHEN the batch is handled, THEN each was awaited to its end and succeeded
    assert failed_ids(consumer.handle(sqs.event(*records), FakeContext())) == []
    assert sorted(ran) == sorted(names)
