"""Batches sent by a thread pool, a bounded window of the input at a time, results in input order.

A reader thread reads and validates the input only while fewer than ``window_events`` events (and
``window_bytes`` of their messages) are read but not yet reported: memory stays bounded on millions of
events from stdin. At most ``concurrency`` requests are in flight. A partial batch goes out when the
window is full, or when no input has come for ``linger`` seconds (a producer that pauses does not hold
back what it already wrote, nor its results). On a FIFO queue never two requests of one message group
are in flight, so a group's batches reach SQS in the order of the input (requests of different groups
overlap); once a message of a group failed for good, the group's later batches are not sent.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from publisher.batching import MAX_BATCH_ENTRIES, Batch, BatchBuilder, Entry
from publisher.sender import PublishResult, held_back

Prepare = Callable[[int, object], Entry | PublishResult]
# What the reader has read, in order, and the dispatcher's inbox (also where finished requests post).
Arrivals = tuple[deque[object], "queue.SimpleQueue[object]"]


# Requests in flight: 25 ms apart, one process's client CPU (about 1.5 ms a request with botocore) is the
# limit well before 32 are (docs/decisions/048-publisher-at-scale.md).
DEFAULT_CONCURRENCY = 32


@dataclass(frozen=True)
class Window:
    concurrency: int = DEFAULT_CONCURRENCY
    events: int = 0  # 0: four requests' worth of events per request in flight
    bytes: int = 64 * 2**20
    linger: float = 0.05  # seconds without input before a partial batch is sent

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")

    @property
    def max_events(self) -> int:
        return self.events or 40 * self.concurrency


class _Gate:
    """The window's room, shared by the reader thread and the dispatcher: events read and not yet
    reported, and the bytes of entries read and not yet sent."""

    def __init__(self, window: Window) -> None:
        self._window = window
        self._room = threading.Condition()
        self._events = 0
        self._bytes = 0
        self._closed = False

    def wait_for_room(self) -> bool:
        """Blocks until one more event may be read; False once the run is over."""
        with self._room:
            self._room.wait_for(self._has_room)
            return not self._closed

    def _has_room(self) -> bool:
        limits = self._events < self._window.max_events and (self._bytes < self._window.bytes or not self._bytes)
        return self._closed or limits

    def took(self, held_bytes: int) -> None:
        with self._room:
            self._events += 1
            self._bytes += held_bytes

    def freed(self, *, events: int = 0, held_bytes: int = 0) -> None:
        with self._room:
            self._events -= events
            self._bytes -= held_bytes
            self._room.notify()

    def close(self) -> None:
        with self._room:
            self._closed = True
            self._room.notify_all()


def _read(source: Iterator[object], prepare: Prepare, gate: _Gate, arrivals: Arrivals) -> None:
    """The reader thread: each event prepared, as (index, entry or result), then _END, or the error.

    Appended to ``arrivals`` without waking the dispatcher, which is woken once a batch's worth has
    arrived, and otherwise looks at least every ``linger``: one wake per event cost more CPU than the
    requests themselves."""
    index = 0
    items, inbox = arrivals
    try:
        while gate.wait_for_room():
            document = next(source, _END)
            if document is _END:
                break
            prepared = prepare(index, document)
            gate.took(0 if isinstance(prepared, PublishResult) else prepared.held_bytes)
            items.append((index, prepared))
            index += 1
            if index % MAX_BATCH_ENTRIES == 0:
                inbox.put(_ARRIVED)
    except Exception as error:  # the caller's iterator failed: raised again to the caller
        items.append(error)
    else:
        items.append(_END)
    inbox.put(_ARRIVED)


class Dispatcher:
    """One run over an input: prepares each event, batches, sends, and yields the results in order."""

    def __init__(
        self,
        prepare: Prepare,
        send: Callable[[Batch], dict[int, PublishResult]],
        window: Window,
        *,
        ordered_groups: bool,
        max_batch_bytes: int,
    ) -> None:
        self._prepare = prepare
        self._send = send
        self._window = window
        self._ordered_groups = ordered_groups
        self._builder = BatchBuilder(max_batch_bytes, by_group=ordered_groups)
        self._gate = _Gate(window)
        self._waiting: list[Batch] = []
        self._in_flight: dict[Future[dict[int, PublishResult]], Batch] = {}
        self._busy_groups: set[str | None] = set()
        self._failed_groups: dict[str | None, str] = {}  # a FIFO group: the event that failed for good
        self._done: dict[int, PublishResult] = {}
        self._held: dict[int, int] = {}  # bytes held per event read and not yet sent
        self._held_bytes = 0
        self._read = 0
        self._reported = 0
        self._exhausted = False
        self._last_input = time.monotonic()
        self.peak_in_flight = 0

    def run(self, events: Iterable[object]) -> Iterator[PublishResult]:
        inbox: queue.SimpleQueue[object] = queue.SimpleQueue()
        arrivals: Arrivals = (deque(), inbox)
        reader = threading.Thread(target=_read, args=(iter(events), self._prepare, self._gate, arrivals),
                                  name="sqs-publish-reader", daemon=True)  # fmt: skip
        with ThreadPoolExecutor(self._window.concurrency, thread_name_prefix="sqs-publish") as pool:
            reader.start()
            try:
                while not (self._exhausted and self._reported == self._read):
                    self._receive(arrivals)
                    self._close_batches()
                    self._start(pool, inbox)
                    yield from self._in_order()
            finally:
                self._gate.close()  # a reader blocked on the window stops; one blocked on its input is a daemon
                for future in self._in_flight:
                    future.cancel()

    def _receive(self, arrivals: Arrivals) -> None:
        """Takes finished requests and what the reader read; waits for the first wake, at most a linger."""
        items, inbox = arrivals
        try:
            item = inbox.get(timeout=self._linger_left())
            while True:
                if item is not _ARRIVED:
                    self._take(item)
                item = inbox.get_nowait()
        except queue.Empty:
            pass
        while items:
            self._take(items.popleft())

    def _take(self, item: object) -> None:
        if isinstance(item, Future):
            self._collect(item)
        elif isinstance(item, tuple):
            index, prepared = item
            self._read = index + 1
            self._last_input = time.monotonic()
            if isinstance(prepared, PublishResult):
                self._done[index] = prepared
            else:
                self._held[index] = prepared.held_bytes
                self._held_bytes += prepared.held_bytes
                self._waiting.extend(self._builder.add(prepared))
        elif item is _END:
            self._exhausted = True
        elif isinstance(item, Exception):
            raise item

    def _room(self) -> bool:
        return len(self._in_flight) + len(self._waiting) < self._window.concurrency

    def _linger_left(self) -> float | None:
        """Seconds to wait for a wake: until a partial batch is due, or a linger at most while the reader may
        have read what it has not yet woken the dispatcher for; None once the input is all read."""
        if self._exhausted:
            return None
        if not self._builder.has_open() or not self._room():
            return self._window.linger
        return max(0.0, self._last_input + self._window.linger - time.monotonic())

    def _close_batches(self) -> None:
        if self._exhausted:
            self._waiting.extend(self._builder.close_all())
            return
        window_full = self._read - self._reported >= self._window.max_events or (
            self._held_bytes >= self._window.bytes and self._held_bytes > 0
        )
        idle = time.monotonic() - self._last_input >= self._window.linger
        # The window is full, or the input is quiet: send the oldest partial batch rather than wait for it to fill.
        while (window_full or idle) and self._room() and self._builder.has_open():
            self._waiting.extend(filter(None, [self._builder.close_oldest()]))
            window_full = False

    def _start(self, pool: ThreadPoolExecutor, inbox: queue.SimpleQueue[object]) -> None:
        """Starts waiting batches, oldest first, while there is room and their group is not in flight."""
        for batch in list(self._waiting):
            if len(self._in_flight) >= self._window.concurrency:
                break
            group = batch.group_id if self._ordered_groups else None
            if self._ordered_groups and group in self._busy_groups:
                continue
            self._waiting.remove(batch)
            if group in self._failed_groups:
                self._hold_back(batch, self._failed_groups[group])
                continue
            if self._ordered_groups:
                self._busy_groups.add(group)
            future = pool.submit(self._send, batch)
            self._in_flight[future] = batch
            future.add_done_callback(inbox.put)
        self.peak_in_flight = max(self.peak_in_flight, len(self._in_flight))

    def _collect(self, future: Future[dict[int, PublishResult]]) -> None:
        batch = self._in_flight.pop(future)
        self._busy_groups.discard(batch.group_id)
        results = future.result()
        self._done.update(results)
        if self._ordered_groups and batch.group_id not in self._failed_groups:
            failed = next((entry for entry in batch.entries if not results[entry.index].ok), None)
            if failed is not None:
                self._failed_groups[batch.group_id] = failed.event_id
        self._release(batch)

    def _hold_back(self, batch: Batch, failed_event_id: str) -> None:
        """A batch of a FIFO group whose earlier message failed for good: reported, never sent."""
        for entry in batch.entries:
            self._done[entry.index] = held_back(entry, batch.group_id, failed_event_id)
        self._release(batch)

    def _release(self, batch: Batch) -> None:
        freed = sum(self._held.pop(entry.index, 0) for entry in batch.entries)
        self._held_bytes -= freed
        self._gate.freed(held_bytes=freed)

    def _in_order(self) -> Iterator[PublishResult]:
        start = self._reported
        while self._reported in self._done:
            yield self._done.pop(self._reported)
            self._reported += 1
        if self._reported > start:
            self._gate.freed(events=self._reported - start)


_END = object()
_ARRIVED = object()  # the reader's wake: a batch's worth read, or the input's end
