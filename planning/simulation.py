"""A seeded discrete-event simulation of the event source mapping and the function.

It models what AWS documents (planning/model.py): readers that long-poll, receive up to 10
messages a call and gather a batch (batch size, window, 6 MB); scale-up while messages wait (5
then +300 a minute, or provisioned pollers' +1,000 a minute) and back down when idle; the
function's concurrency limit with throttled invokes retried until the batch's visibility timeout
expires; per-record handler times, the time reserve, retries with backoff, poison,
``maxReceiveCount`` and the redrive of messages received once too often.

Messages move in cohorts (a run of messages sent between two instants, with one receive count),
so a backlog of millions costs a few objects; arrivals are the profile's fluid count, bursts are
cohorts sent at one instant. Order is first-in first-out, the best case of a standard queue.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from planning.model import (
    MESSAGES_PER_RECEIVE,
    THROTTLE_RETRY_SECONDS,
    Mapping,
    full_batch,
)
from planning.workload import Workload

# From this many records on, a sum of handler times or of outcomes is drawn as a normal.
CLT_RECORDS = 50
# A reader polling an empty queue for this long is released (down to the initial readers).
IDLE_RELEASE_SECONDS = 10.0


@dataclass
class Cohort:
    first_sent: float
    last_sent: float
    count: int
    receives: int  # receives so far

    def take(self, n: int) -> Cohort:
        """The first ``n`` messages, removed from this cohort."""
        split = self.first_sent + (self.last_sent - self.first_sent) * n / self.count
        head = Cohort(self.first_sent, split, n, self.receives)
        self.first_sent, self.count = split, self.count - n
        return head


@dataclass(frozen=True)
class Sample:
    t: float
    waiting: int  # visible or waiting for their retry
    in_flight: int
    oldest_age: float
    readers: int
    executing: float  # mean concurrent executions since the previous sample


@dataclass
class SimulationResult:
    samples: list[Sample] = field(default_factory=list)
    succeeded: int = 0
    quarantined: int = 0
    redriven: int = 0  # moved to the DLQ by SQS after maxReceiveCount, without a reason
    invocations: int = 0
    records_invoked: int = 0
    throttled_invokes: int = 0
    billed_ms: float = 0.0
    drained_at: float = math.nan  # when the last message sent was settled
    peak_readers: int = 0
    peak_age: float = 0.0

    @property
    def settled(self) -> int:
        return self.succeeded + self.quarantined + self.redriven

    def mean_concurrency(self, since: float) -> float:
        window = [s.executing for s in self.samples if s.t >= since]
        return sum(window) / len(window) if window else 0.0


@dataclass(eq=False)  # readers are told apart by identity
class _Reader:
    ident: int
    batch: list[Cohort] = field(default_factory=list)
    records: int = 0
    window_ends: float = math.inf
    received_at: float = 0.0
    waiting_since: float = math.nan
    executing: bool = False
    retired: bool = False
    # Per cohort of the batch: succeeded, failed (retryable), poison, not started.
    outcomes: list[tuple[Cohort, int, int, int, int]] = field(default_factory=list)

    def clear(self) -> None:
        self.batch, self.records, self.window_ends = [], 0, math.inf


class Simulation:
    def __init__(self, mapping: Mapping, workload: Workload, *, seed: int = 1, sample_every: float = 1.0) -> None:
        self.mapping = mapping.for_workload(workload)
        self.workload = workload
        self.rng = random.Random(seed)  # noqa: S311  # a seeded model, not secrets
        self.draw = workload.handler.sampler(self.rng)
        self.sample_every = sample_every
        self.full = full_batch(mapping, workload)
        self.receive_s = workload.receive_ms / 1000
        self.now = 0.0
        self.events: list[tuple[float, int, Callable[[], None]]] = []
        self.sequence = itertools.count()
        self.queue: deque[Cohort] = deque()
        self.delayed: list[tuple[float, int, Cohort]] = []
        self.readers: dict[int, _Reader] = {}
        self.waiting: deque[_Reader] = deque()  # long-polling an empty queue, oldest first
        self.reader_ids = itertools.count()
        self.executing = 0
        self.busy_seconds = 0.0  # the integral of executing invocations over time
        self.busy_since = 0.0
        self.busy_at_last_sample = 0.0
        self.admitted_fluid = 0
        self.fluid_cursor = 0.0
        self.scale_credit = 0.0
        self.wake_pending = False
        self.arrival_pending = False
        self.visible_before = False
        self.result = SimulationResult()
        self.sent = 0
        self.horizon = 0.0

    # -- scheduling -------------------------------------------------------------------------------
    def at(self, t: float, action: Callable[[], None]) -> None:
        heapq.heappush(self.events, (t, next(self.sequence), action))

    def run(self, horizon: float, *, until_drained: bool = True, limit: float = 30 * 86_400) -> SimulationResult:
        """Run to ``horizon`` seconds of arrivals, then (``until_drained``) until every message settled."""
        self.horizon = horizon
        for b in self.workload.arrivals.bursts:
            if b.at_seconds <= horizon:
                self.at(b.at_seconds, functools.partial(self._send, Cohort(b.at_seconds, b.at_seconds, b.messages, 0)))
        for _ in range(self.mapping.initial_readers):
            self._start_reader()
        self.at(0.0, self._tick)
        while self.events:
            t, _, action = heapq.heappop(self.events)
            if t > limit or (t > horizon and not (until_drained and self._outstanding())):
                break
            self.now = t
            action()
        return self.result

    # -- arrivals -------------------------------------------------------------------------------
    def _arrivals_by(self, t: float) -> int:
        a = self.workload.arrivals
        fluid = a.arrived_by(min(t, self.horizon)) - sum(b.messages for b in a.bursts if b.at_seconds <= t)
        return math.floor(fluid + 1e-9)

    def _admit(self) -> None:
        """Admit the fluid arrivals up to now as one cohort (lazily: when something looks at the queue)."""
        total = self._arrivals_by(self.now)
        if total > self.admitted_fluid:
            count = total - self.admitted_fluid
            self.admitted_fluid = total
            self._send(Cohort(self.fluid_cursor, min(self.now, self.horizon), count, 0))
        self.fluid_cursor = min(self.now, self.horizon)

    def _expect_arrival(self) -> None:
        """With readers long-polling an empty queue, wake at the next arrival (one pending at a time)."""
        if self.arrival_pending or self.now >= self.horizon:
            return
        wanted = self.admitted_fluid + 1
        if self._arrivals_by(self.horizon) < wanted:
            return
        arrivals = self.workload.arrivals
        if not arrivals.per_minute and arrivals.steady_rate > 0:
            due = (wanted - 1e-9) / arrivals.steady_rate
        else:
            low, due = self.now, self.horizon
            for _ in range(50):
                middle = (low + due) / 2
                if self._arrivals_by(middle) >= wanted:
                    due = middle
                else:
                    low = middle
        self.arrival_pending = True
        # At high rates, arrivals gather for half a receive round trip: one event, not one a message.
        self.at(max(due, self.now + self.receive_s / 2), self._arrival_due)

    def _arrival_due(self) -> None:
        self.arrival_pending = False
        self._admit()
        if self.waiting and not self.queue:
            self._expect_arrival()

    def _send(self, cohort: Cohort) -> None:
        self.sent += cohort.count
        tail = self.queue[-1] if self.queue else None
        if tail is not None and tail.receives == cohort.receives == 0 and tail.last_sent == cohort.first_sent:
            tail.last_sent, tail.count = cohort.last_sent, tail.count + cohort.count  # one run of arrivals
        else:
            self.queue.append(cohort)
        self._wake()

    def _wake(self) -> None:
        """A long-polling reader returns with what is visible after one round trip."""
        if self.waiting and not self.wake_pending and self.queue:
            reader = self.waiting.popleft()
            self.wake_pending = True
            self.at(self.now + self.receive_s, lambda: self._received(reader, woken=True))

    # -- readers --------------------------------------------------------------------------------
    def _start_reader(self) -> None:
        reader = _Reader(next(self.reader_ids))
        self.readers[reader.ident] = reader
        self.result.peak_readers = max(self.result.peak_readers, len(self.readers))
        self.at(self.now, lambda: self._poll(reader))

    def _poll(self, reader: _Reader) -> None:
        if reader.retired:
            return
        self._admit()
        if self.queue:
            self.at(self.now + self.receive_s, lambda: self._received(reader))
        else:
            reader.waiting_since = self.now
            self.waiting.append(reader)
            self._expect_arrival()
            if reader.batch and math.isfinite(reader.window_ends):
                self.at(reader.window_ends, lambda: self._window_closed(reader))

    def _received(self, reader: _Reader, *, woken: bool = False) -> None:
        if woken:
            self.wake_pending = False
        self._admit()
        self._release_due_retries()
        first = not reader.batch
        wanted = min(MESSAGES_PER_RECEIVE, self.full - reader.records)
        got = 0
        while got < wanted and self.queue:
            head = self.queue[0]
            part = head.take(min(head.count, wanted - got)) if head.count > wanted - got else self.queue.popleft()
            got += part.count
            if part.receives >= self.mapping.max_receive_count:
                self.result.redriven += part.count  # SQS moves it to the DLQ on this receive
                continue
            part.receives += 1
            reader.batch.append(part)
            reader.records += part.count
        if self.queue:
            self._wake()
        if not reader.batch:
            self._poll(reader)
            return
        if first:  # the batch opens: its window and its visibility timeout start now
            reader.received_at = self.now
            reader.window_ends = self.now + self.mapping.window_seconds if self.mapping.window_seconds else self.now
        if reader.records < self.full and self.now < reader.window_ends:
            self._poll(reader)  # keep gathering until full or the window closes
            return
        self._invoke(reader)

    def _window_closed(self, reader: _Reader) -> None:
        if reader in self.waiting and reader.batch:
            self.waiting.remove(reader)
            self._invoke(reader)

    def _invoke(self, reader: _Reader) -> None:
        if self.executing >= self.mapping.function_cap:
            self.result.throttled_invokes += 1
            if self.now - reader.received_at >= self.mapping.visibility_seconds:
                for part in reader.batch:  # visibility expired: back to the queue, the receive counted
                    self.queue.appendleft(part)
                reader.clear()
                self._wake()
                self._poll(reader)
                return
            self.at(self.now + THROTTLE_RETRY_SECONDS, lambda: self._invoke(reader))
            return
        self._account_busy()
        self.executing += 1
        reader.executing = True
        duration_ms = self._run_batch(reader)
        self.result.invocations += 1
        self.result.billed_ms += math.ceil(duration_ms)
        self.at(self.now + duration_ms / 1000, lambda: self._finished(reader))

    def _run_batch(self, reader: _Reader) -> float:
        """Each record's time and outcome; the batch's duration in ms. Outcomes apply when it ends."""
        budget_ms = self.mapping.time_budget_seconds * 1000
        n, handler = reader.records, self.workload.handler
        self.result.records_invoked += n
        spread = math.sqrt(n) * handler.stdev_ms
        if self.workload.records_in_parallel == 1 and n >= CLT_RECORDS and n * handler.mean_ms + 6 * spread < budget_ms:
            # Records one after another, far from the time budget: the sum of many handler times is
            # normal (central limit theorem); one draw instead of one a record.
            reader.outcomes = [(part, *self._split(part.count), 0) for part in reader.batch]
            return max(0.0, self.rng.gauss(n * handler.mean_ms, spread)) + self.workload.invocation_overhead_ms
        lanes = [0.0] * min(self.workload.records_in_parallel, n)
        outcomes: list[tuple[Cohort, int, int, int, int]] = []
        for part in reader.batch:
            started = 0
            for _ in range(part.count):
                start = heapq.heappop(lanes)
                if start >= budget_ms:
                    heapq.heappush(lanes, start)
                    break
                heapq.heappush(lanes, start + self.draw())
                started += 1
            outcomes.append((part, *self._split(started), part.count - started))
        reader.outcomes = outcomes
        return max(lanes) + self.workload.invocation_overhead_ms

    def _split(self, records: int) -> tuple[int, int, int]:
        """Succeeded, failed (retryable) and poison (quarantined at once) of ``records`` run."""
        poison = self._binomial(records, self.workload.poison_rate)
        share = self.workload.failure_rate / (1 - self.workload.poison_rate)
        failed = self._binomial(records - poison, share)
        return records - poison - failed, failed, poison

    def _binomial(self, n: int, p: float) -> int:
        if n <= 0 or p <= 0:
            return 0
        if n <= CLT_RECORDS:
            return sum(self.rng.random() < p for _ in range(n))
        return min(n, max(0, round(self.rng.gauss(n * p, math.sqrt(n * p * (1 - p))))))

    def _account_busy(self) -> None:
        self.busy_seconds += self.executing * (self.now - self.busy_since)
        self.busy_since = self.now

    def _finished(self, reader: _Reader) -> None:
        self._account_busy()
        self.executing -= 1
        reader.executing = False
        last = self.mapping.max_receive_count
        for part, ok, failed, poison, unstarted in reader.outcomes:
            self.result.succeeded += ok
            self.result.quarantined += poison
            for count, delay in ((failed, self.mapping.retry_delay_seconds(part.receives)), (unstarted, 0.0)):
                if not count:
                    continue
                if part.receives >= last:
                    self.result.quarantined += count  # quarantined on its last receive, with its reason
                    continue
                back = Cohort(part.first_sent, part.last_sent, count, part.receives)
                heapq.heappush(self.delayed, (self.now + delay, next(self.sequence), back))
                self.at(self.now + delay, self._release_due_retries)
        reader.clear()
        if not self._outstanding() and self.now >= self.horizon:
            self.result.drained_at = self.now
        # The next receive starts after this batch's delete round trip.
        self.at(self.now + self.receive_s, lambda: self._poll(reader))

    def _release_due_retries(self) -> None:
        released = False
        while self.delayed and self.delayed[0][0] <= self.now:
            self.queue.append(heapq.heappop(self.delayed)[2])
            released = True
        if released:
            self._wake()

    # -- scaling and observation ------------------------------------------------------------------
    def _tick(self) -> None:
        self._admit()
        self._release_due_retries()
        visible = sum(c.count for c in self.queue)
        active = [r for r in self.readers.values() if not r.retired]
        # Scale up while messages keep waiting (at least a receive's worth, two samples in a row)
        # and no reader is idle.
        waiting_now = visible >= MESSAGES_PER_RECEIVE
        backlog, self.visible_before = waiting_now and self.visible_before, waiting_now
        if backlog and not self.waiting and len(active) < self.mapping.mapping_cap:
            self.scale_credit += self.mapping.scale_up_per_second * self.sample_every
            while self.scale_credit >= 1 and len(active) < self.mapping.mapping_cap:
                self.scale_credit -= 1
                self._start_reader()
                active.append(self.readers[max(self.readers)])
        elif not visible:
            self.scale_credit = 0.0
            idle = [r for r in self.waiting if not r.batch and self.now - r.waiting_since >= IDLE_RELEASE_SECONDS]
            if idle and len(active) > self.mapping.initial_readers:
                reader = idle[0]
                self.waiting.remove(reader)
                reader.retired = True
                del self.readers[reader.ident]
        self._sample()
        if self.now < self.horizon or self._outstanding():
            self.at(self.now + self.sample_every, self._tick)

    def _outstanding(self) -> int:
        """Messages sent or still to arrive that are not settled yet."""
        to_arrive = self._arrivals_by(self.horizon) - self.admitted_fluid
        return self.sent - self.result.settled + to_arrive

    def _sample(self) -> None:
        cohorts = [*self.queue, *(entry[2] for entry in self.delayed)]
        cohorts += [c for r in self.readers.values() for c in r.batch]
        oldest = min((c.first_sent for c in cohorts), default=self.now)
        in_flight = sum(r.records for r in self.readers.values())
        waiting = self.sent - self.result.settled - in_flight
        age = self.now - oldest
        self.result.peak_age = max(self.result.peak_age, age)
        self._account_busy()
        executing = (self.busy_seconds - self.busy_at_last_sample) / self.sample_every
        self.busy_at_last_sample = self.busy_seconds
        self.result.samples.append(Sample(self.now, waiting, in_flight, age, len(self.readers), executing))


def simulate(mapping: Mapping, workload: Workload, horizon: float, *, seed: int = 1) -> SimulationResult:
    return Simulation(mapping, workload, seed=seed).run(horizon)
