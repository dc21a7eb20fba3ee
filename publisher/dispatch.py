"""Batches sent by a thread pool, a bounded window of the input at a time, results in input order.

The input is read only while fewer than ``window_events`` events (and ``window_bytes`` of their
messages) are read but not yet reported: memory stays bounded on millions of events from stdin. At
most ``concurrency`` requests are in flight; on a FIFO queue never two of one message group, so a
group's batches reach SQS in the order of the input (requests of different groups overlap).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from publisher.batching import Batch, BatchBuilder, Entry
from publisher.sender import PublishResult


@dataclass(frozen=True)
class Window:
    concurrency: int = 16
    events: int = 0  # 0: four requests' worth of events per request in flight
    bytes: int = 64 * 2**20

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")

    @property
    def max_events(self) -> int:
        return self.events or 40 * self.concurrency


class Dispatcher:
    """One run over an input: prepares each event, batches, sends, and yields the results in order."""

    def __init__(
        self,
        prepare: Callable[[int, object], Entry | PublishResult],
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
        self._builder = BatchBuilder(max_batch_bytes)
        self._waiting: list[Batch] = []
        self._in_flight: dict[Future[dict[int, PublishResult]], Batch] = {}
        self._busy_groups: set[str | None] = set()
        self._done: dict[int, PublishResult] = {}
        self._held: dict[int, int] = {}  # bytes held per event read and not yet sent
        self._held_bytes = 0
        self._read = 0
        self._reported = 0
        self.peak_in_flight = 0

    def run(self, events: Iterable[object]) -> Iterator[PublishResult]:
        source = iter(events)
        exhausted = False
        with ThreadPoolExecutor(self._window.concurrency, thread_name_prefix="sqs-publish") as pool:
            try:
                while True:
                    exhausted = exhausted or self._read_some(source)
                    if exhausted:
                        self._waiting.extend(self._builder.close_all())
                    elif len(self._in_flight) + len(self._waiting) < self._window.concurrency:
                        # The window is full: send the oldest partial batch rather than wait for it to fill.
                        self._waiting.extend(filter(None, [self._builder.close_oldest()]))
                    self._start(pool)
                    yield from self._in_order()
                    if not self._in_flight:
                        if exhausted and not self._waiting:
                            return
                        continue
                    self._collect(wait(self._in_flight, return_when=FIRST_COMPLETED).done)
                    yield from self._in_order()
            finally:
                for future in self._in_flight:
                    future.cancel()

    def _read_some(self, source: Iterator[object]) -> bool:
        """Reads events while the window has room; True when the input is exhausted."""
        while self._read - self._reported < self._window.max_events and (
            self._held_bytes < self._window.bytes or not self._held
        ):
            document = next(source, _END)
            if document is _END:
                return True
            index = self._read
            self._read += 1
            prepared = self._prepare(index, document)
            if isinstance(prepared, PublishResult):
                self._done[index] = prepared
                continue
            self._held[index] = prepared.held_bytes
            self._held_bytes += prepared.held_bytes
            self._waiting.extend(self._builder.add(prepared))
        return False

    def _start(self, pool: ThreadPoolExecutor) -> None:
        """Starts waiting batches, oldest first, while there is room and their group is not in flight."""
        for batch in list(self._waiting):
            if len(self._in_flight) >= self._window.concurrency:
                break
            group = batch.group_id if self._ordered_groups else None
            if self._ordered_groups and group in self._busy_groups:
                continue
            self._waiting.remove(batch)
            if self._ordered_groups:
                self._busy_groups.add(group)
            self._in_flight[pool.submit(self._send, batch)] = batch
        self.peak_in_flight = max(self.peak_in_flight, len(self._in_flight))

    def _collect(self, finished: Iterable[Future[dict[int, PublishResult]]]) -> None:
        for future in finished:
            batch = self._in_flight.pop(future)
            self._busy_groups.discard(batch.group_id)
            self._done.update(future.result())
            for entry in batch.entries:
                self._held_bytes -= self._held.pop(entry.index, 0)

    def _in_order(self) -> Iterator[PublishResult]:
        while self._reported in self._done:
            yield self._done.pop(self._reported)
            self._reported += 1


_END = object()
