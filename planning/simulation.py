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

``Simulation`` composes small parts on one clock: ``_Queue`` (arrivals, visible messages and
retries waiting for their backoff), ``_Pollers`` (the mapping's readers, their batches and the
scaling policy), ``_Function`` (concurrency, handler times and outcomes) and ``_Recorder`` (the
samples).
"""

from __future__ import annotations

import bisect
import dataclasses
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
    saturated_reader,
)
from planning.workload import Workload

# From this many records on, a sum of handler times or of outcomes is drawn as a normal.
CLT_RECORDS = 50
# A reader polling an empty queue for this long is released (down to the initial readers).
IDLE_RELEASE_SECONDS = 10.0
# A stretch this long with the same readers and a queue that does not grow is taken as steady. Its
# rates are the skipped stretch's: a minute varies by 20% (the readers fall in and out of step),
# five minutes by a few percent.
STATIONARY_SECONDS = 300.0


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


class _Clock:
    """Simulated time and the events due at it, in order (ties in the order they were scheduled)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.events: list[tuple[float, int, Callable[[], None]]] = []
        self.sequence = itertools.count()

    def at(self, t: float, action: Callable[[], None]) -> None:
        heapq.heappush(self.events, (t, next(self.sequence), action))


class _Queue:
    """The arrivals, the visible messages, and the failed ones waiting for their backoff.

    ``wake`` is told when messages become visible; ``polling`` says whether a reader long-polls.
    """

    def __init__(self, clock: _Clock, workload: Workload, *, receive_s: float, max_receive_count: int) -> None:
        self.clock = clock
        self.arrivals = workload.arrivals
        self.receive_s = receive_s
        self.max_receive_count = max_receive_count
        self.visible: deque[Cohort] = deque()
        self.delayed: list[tuple[float, int, Cohort]] = []
        self.admitted_fluid = 0
        self.fluid_cursor = 0.0
        self.arrival_pending = False
        self.sent = 0
        self.horizon = 0.0  # in simulated time: the arrivals' end, earlier by every stretch skipped
        # Real time = simulated time + offset: the stationary stretches fast-forwarded (``Simulation._skip``),
        # whose fluid arrivals (``skipped``) were settled in bulk.
        self.offset = 0.0
        self.skipped = 0
        self.wake: Callable[[], None] = lambda: None
        self.polling: Callable[[], bool] = lambda: False

    def arrivals_by(self, t: float) -> int:
        a = self.arrivals
        real = min(t, self.horizon) + self.offset
        fluid = a.arrived_by(real) - sum(b.messages for b in a.bursts if b.at_seconds <= real)
        return math.floor(fluid + 1e-9) - self.skipped

    def to_arrive(self) -> int:
        return self.arrivals_by(self.horizon) - self.admitted_fluid

    def admit(self) -> None:
        """Admit the fluid arrivals up to now as one cohort (lazily: when something looks at the queue)."""
        now = self.clock.now
        total = self.arrivals_by(now)
        if total > self.admitted_fluid:
            count = total - self.admitted_fluid
            self.admitted_fluid = total
            self.send(Cohort(self.fluid_cursor, min(now, self.horizon), count, 0))
        self.fluid_cursor = min(now, self.horizon)

    def expect_arrival(self) -> None:
        """With readers long-polling an empty queue, wake at the next arrival (one pending at a time)."""
        now = self.clock.now
        if self.arrival_pending or now >= self.horizon:
            return
        wanted = self.admitted_fluid + 1
        if self.arrivals_by(self.horizon) < wanted:
            return
        arrivals = self.arrivals
        if not arrivals.per_minute and arrivals.steady_rate > 0:
            due = (wanted + self.skipped - 1e-9) / arrivals.steady_rate - self.offset
        else:
            low, due = now, self.horizon
            for _ in range(50):
                middle = (low + due) / 2
                if self.arrivals_by(middle) >= wanted:
                    due = middle
                else:
                    low = middle
        self.arrival_pending = True
        # At high rates, arrivals gather for half a receive round trip: one event, not one a message.
        self.clock.at(max(due, now + self.receive_s / 2), self._arrival_due)

    def _arrival_due(self) -> None:
        self.arrival_pending = False
        self.admit()
        if self.polling() and not self.visible:
            self.expect_arrival()

    def send(self, cohort: Cohort) -> None:
        self.sent += cohort.count
        tail = self.visible[-1] if self.visible else None
        if tail is not None and tail.receives == cohort.receives == 0 and tail.last_sent == cohort.first_sent:
            tail.last_sent, tail.count = cohort.last_sent, tail.count + cohort.count  # one run of arrivals
        else:
            self.visible.append(cohort)
        self.wake()

    def retry(self, cohort: Cohort, delay: float) -> None:
        """Visible again after ``delay``: the consumer's backoff (its visibility change)."""
        now = self.clock.now
        heapq.heappush(self.delayed, (now + delay, next(self.clock.sequence), cohort))
        self.clock.at(now + delay, self.release_due_retries)

    def release_due_retries(self) -> None:
        released = False
        while self.delayed and self.delayed[0][0] <= self.clock.now:
            self.visible.append(heapq.heappop(self.delayed)[2])
            released = True
        if released:
            self.wake()

    def receive(self, wanted: int) -> tuple[list[Cohort], int]:
        """Up to ``wanted`` visible messages, their receive counted, and how many SQS redrove instead
        (received ``maxReceiveCount`` times already)."""
        parts: list[Cohort] = []
        got = redriven = 0
        while got < wanted and self.visible:
            head = self.visible[0]
            part = head.take(min(head.count, wanted - got)) if head.count > wanted - got else self.visible.popleft()
            got += part.count
            if part.receives >= self.max_receive_count:
                redriven += part.count
                continue
            part.receives += 1
            parts.append(part)
        return parts, redriven

    def return_unprocessed(self, batch: list[Cohort]) -> None:
        """A batch whose visibility timeout expired before it ran: visible again, at the front."""
        for part in batch:
            self.visible.appendleft(part)

    def unsettled(self, settled: int) -> int:
        """Messages sent or still to arrive that are not settled yet."""
        return self.sent - settled + self.to_arrive()

    def cohorts(self) -> list[Cohort]:
        return [*self.visible, *(entry[2] for entry in self.delayed)]


class _Function:
    """The function's concurrency (and its integral over time), and what a batch comes to when it runs."""

    def __init__(self, clock: _Clock, mapping: Mapping, workload: Workload, rng: random.Random) -> None:
        self.clock = clock
        self.mapping = mapping
        self.workload = workload
        self.rng = rng
        self.draw = workload.handler.sampler(rng)
        self.executing = 0
        self.busy_seconds = 0.0  # the integral of executing invocations over time
        self.busy_since = 0.0
        # A rate cap (a downstream's rate limit, the pollers' bytes) as one token bucket shared by
        # every instance: the next instant a record may start.
        self.next_token = 0.0

    @property
    def throttles(self) -> bool:
        return self.executing >= self.mapping.function_cap

    def start(self) -> None:
        self.account_busy()
        self.executing += 1

    def finish(self) -> None:
        self.account_busy()
        self.executing -= 1

    def account_busy(self) -> None:
        self.busy_seconds += self.executing * (self.clock.now - self.busy_since)
        self.busy_since = self.clock.now

    def run_batch(self, batch: list[Cohort], n: int) -> tuple[list[tuple[Cohort, int, int, int, int]], float]:
        """Each record's time and outcome, per cohort; the batch's duration in ms. Outcomes apply when it ends.

        Under a rate cap the records wait for their turn: the batch lasts at least until its last
        record's token, plus that record's handler time."""
        outcomes, duration_ms = self._records(batch, n)
        rate = self.mapping.rate_cap
        if not math.isfinite(rate):
            return outcomes, duration_ms
        now = self.clock.now
        first = max(self.next_token, now)
        self.next_token = first + n / rate
        waited_ms = (first + (n - 1) / rate - now) * 1000 + self.workload.handler.mean_ms
        return outcomes, max(duration_ms, waited_ms + self.workload.invocation_overhead_ms)

    def _records(self, batch: list[Cohort], n: int) -> tuple[list[tuple[Cohort, int, int, int, int]], float]:
        budget_ms = self.mapping.time_budget_seconds * 1000
        handler = self.workload.handler
        spread = math.sqrt(n) * handler.stdev_ms
        if self.workload.records_in_parallel == 1 and n >= CLT_RECORDS and n * handler.mean_ms + 6 * spread < budget_ms:
            # Records one after another, far from the time budget: the sum of many handler times is
            # normal (central limit theorem); one draw instead of one a record.
            outcomes = [(part, *self._split(part.count), 0) for part in batch]
            return outcomes, max(
                0.0, self.rng.gauss(n * handler.mean_ms, spread)
            ) + self.workload.invocation_overhead_ms
        lanes = [0.0] * min(self.workload.records_in_parallel, n)
        outcomes = []
        for part in batch:
            started = 0
            for _ in range(part.count):
                start = heapq.heappop(lanes)
                if start >= budget_ms:
                    heapq.heappush(lanes, start)
                    break
                heapq.heappush(lanes, start + self.draw())
                started += 1
            outcomes.append((part, *self._split(started), part.count - started))
        return outcomes, max(lanes) + self.workload.invocation_overhead_ms

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


class _ScalingPolicy:
    """When the mapping adds readers: while messages keep waiting (at least a receive's worth, two samples
    in a row) and no reader is idle, at the mode's rate up to its cap. Idle readers are released, down to
    the initial ones, only while nothing is visible."""

    def __init__(self, mapping: Mapping, sample_every: float) -> None:
        self.mapping = mapping
        self.sample_every = sample_every
        self.credit = 0.0
        self.visible_before = False

    def readers_to_add(self, visible: int, active: int, *, idle_readers: bool) -> int:
        waiting_now = visible >= MESSAGES_PER_RECEIVE
        backlog, self.visible_before = waiting_now and self.visible_before, waiting_now
        cap = self.mapping.mapping_cap
        if not backlog or idle_readers or active >= cap:
            if not visible:
                self.credit = 0.0
            return 0
        self.credit += self.mapping.scale_up_per_second * self.sample_every
        added = 0
        while self.credit >= 1 and active + added < cap:
            self.credit -= 1
            added += 1
        return added

    def may_release(self, active: int) -> bool:
        return active > self.mapping.initial_readers


class _Pollers:
    """The mapping's readers: each long-polls, gathers a batch, invokes the function (retrying a
    throttled invoke until the batch's visibility timeout), settles what the batch came to, and polls again."""

    def __init__(
        self,
        clock: _Clock,
        mapping: Mapping,
        queue: _Queue,
        function: _Function,
        result: SimulationResult,
        *,
        full: int,
        policy: _ScalingPolicy,
    ) -> None:
        self.clock, self.mapping, self.queue, self.function, self.result = clock, mapping, queue, function, result
        self.full = full
        self.policy = policy
        self.readers: dict[int, _Reader] = {}
        self.waiting: deque[_Reader] = deque()  # long-polling an empty queue, oldest first
        self.reader_ids = itertools.count()
        self.wake_pending = False

    def start_reader(self) -> None:
        reader = _Reader(next(self.reader_ids))
        self.readers[reader.ident] = reader
        self.result.peak_readers = max(self.result.peak_readers, len(self.readers))
        self.clock.at(self.clock.now, lambda: self._poll(reader))

    def wake(self) -> None:
        """A long-polling reader returns with what is visible after one round trip."""
        if self.waiting and not self.wake_pending and self.queue.visible:
            reader = self.waiting.popleft()
            self.wake_pending = True
            self.clock.at(self.clock.now + self.queue.receive_s, lambda: self._received(reader, woken=True))

    def scale(self) -> None:
        """Start the readers the policy adds; with nothing visible, release one idle for long enough."""
        visible = sum(c.count for c in self.queue.visible)
        active = sum(1 for r in self.readers.values() if not r.retired)
        for _ in range(self.policy.readers_to_add(visible, active, idle_readers=bool(self.waiting))):
            self.start_reader()
        if visible:
            return
        now = self.clock.now
        idle = [r for r in self.waiting if not r.batch and now - r.waiting_since >= IDLE_RELEASE_SECONDS]
        if idle and self.policy.may_release(active):
            reader = idle[0]
            self.waiting.remove(reader)
            reader.retired = True
            del self.readers[reader.ident]

    def _poll(self, reader: _Reader) -> None:
        if reader.retired:
            return
        self.queue.admit()
        now = self.clock.now
        if self.queue.visible:
            self.clock.at(now + self.queue.receive_s, lambda: self._received(reader))
        else:
            reader.waiting_since = now
            self.waiting.append(reader)
            self.queue.expect_arrival()
            if reader.batch and math.isfinite(reader.window_ends):
                self.clock.at(reader.window_ends, lambda: self._window_closed(reader))

    def _received(self, reader: _Reader, *, woken: bool = False) -> None:
        if woken:
            self.wake_pending = False
        self.queue.admit()
        self.queue.release_due_retries()
        first = not reader.batch
        parts, redriven = self.queue.receive(min(MESSAGES_PER_RECEIVE, self.full - reader.records))
        self.result.redriven += redriven  # SQS moves them to the DLQ on this receive
        for part in parts:
            reader.batch.append(part)
            reader.records += part.count
        if self.queue.visible:
            self.wake()
        if not reader.batch:
            self._poll(reader)
            return
        now = self.clock.now
        if first:  # the batch opens: its window and its visibility timeout start now
            reader.received_at = now
            reader.window_ends = now + self.mapping.window_seconds if self.mapping.window_seconds else now
        if reader.records < self.full and now < reader.window_ends:
            self._poll(reader)  # keep gathering until full or the window closes
            return
        self._invoke(reader)

    def _window_closed(self, reader: _Reader) -> None:
        if reader in self.waiting and reader.batch:
            self.waiting.remove(reader)
            self._invoke(reader)

    def _invoke(self, reader: _Reader) -> None:
        now = self.clock.now
        if self.function.throttles:
            self.result.throttled_invokes += 1
            if now - reader.received_at >= self.mapping.visibility_seconds:
                self.queue.return_unprocessed(reader.batch)  # visibility expired, the receive counted
                reader.clear()
                self.wake()
                self._poll(reader)
                return
            self.clock.at(now + THROTTLE_RETRY_SECONDS, lambda: self._invoke(reader))
            return
        self.function.start()
        reader.executing = True
        self.result.records_invoked += reader.records
        reader.outcomes, duration_ms = self.function.run_batch(reader.batch, reader.records)
        self.result.invocations += 1
        self.result.billed_ms += math.ceil(duration_ms)
        self.clock.at(now + duration_ms / 1000, lambda: self._finished(reader))

    def _finished(self, reader: _Reader) -> None:
        self.function.finish()
        reader.executing = False
        self._settle(reader.outcomes)
        reader.clear()
        now = self.clock.now
        if not self.queue.unsettled(self.result.settled):
            self.result.drained_at = now + self.queue.offset  # the last message sent so far is settled
        # The next receive starts after this batch's delete round trip.
        self.clock.at(now + self.queue.receive_s, lambda: self._poll(reader))

    def _settle(self, outcomes: list[tuple[Cohort, int, int, int, int]]) -> None:
        """Succeeded and poison are done; failed come back after their backoff, not started at once,
        except on their last receive, where the consumer quarantines them with their reason."""
        last = self.mapping.max_receive_count
        for part, ok, failed, poison, unstarted in outcomes:
            self.result.succeeded += ok
            self.result.quarantined += poison
            for count, delay in ((failed, self.mapping.retry_delay_seconds(part.receives)), (unstarted, 0.0)):
                if not count:
                    continue
                if part.receives >= last:
                    self.result.quarantined += count
                    continue
                self.queue.retry(Cohort(part.first_sent, part.last_sent, count, part.receives), delay)


class _Recorder:
    """The samples: depth, age, readers and the mean concurrency since the previous sample."""

    def __init__(self, result: SimulationResult, sample_every: float) -> None:
        self.result = result
        self.sample_every = sample_every
        self.busy_at_last_sample = 0.0

    def sample(self, now: float, queue: _Queue, pollers: _Pollers, function: _Function) -> None:
        cohorts = queue.cohorts()
        cohorts += [c for r in pollers.readers.values() for c in r.batch]
        oldest = min((c.first_sent for c in cohorts), default=now)
        in_flight = sum(r.records for r in pollers.readers.values())
        waiting = queue.sent - self.result.settled - in_flight
        age = now - oldest
        self.result.peak_age = max(self.result.peak_age, age)
        function.account_busy()
        executing = (function.busy_seconds - self.busy_at_last_sample) / self.sample_every
        self.busy_at_last_sample = function.busy_seconds
        self.result.samples.append(Sample(now + queue.offset, waiting, in_flight, age, len(pollers.readers), executing))


@dataclass(frozen=True)
class _Snapshot:
    t: float  # real time
    readers: int
    depth: int  # waiting and in flight
    counters: tuple[float, ...]  # succeeded, quarantined, redriven, invocations, records invoked, throttled, billed ms


class _FastForward:
    """Skips the stretches where the system repeats itself, so that a day at 1,000 msg/s takes seconds.

    Once the arrivals have kept one rate for a while (no burst, no new CSV rate, the retries of that
    rate settled) and the last ``STATIONARY_SECONDS`` kept the same readers and a queue that does not
    grow, the state at the next instant is this one shifted in time. The stretch until the next
    change (less one window) is then skipped: its arrivals are settled in the proportions the window
    settled them, the counters grow by the window's rates, and its samples repeat the window's. The
    fine model runs everywhere else: the scale-up, bursts, drains and a queue that falls behind.
    """

    def __init__(self, mapping: Mapping, workload: Workload, sample_every: float) -> None:
        self.window = max(2, round(STATIONARY_SECONDS / sample_every))
        self.seconds = self.window * sample_every
        self.snapshots: deque[_Snapshot] = deque(maxlen=self.window + 1)
        retries = sum(mapping.retry_delay_seconds(n) for n in range(1, mapping.max_receive_count))
        self.settle = self.seconds + (retries if workload.failure_rate else 0.0)
        self.changes = _rate_changes(workload)
        self.mapping, self.workload = mapping, workload
        self.readers_since = 0.0

    def observe(self, t: float, readers: int, depth: int, result: SimulationResult) -> None:
        counters = (result.succeeded, result.quarantined, result.redriven, result.invocations,
                    result.records_invoked, result.throttled_invokes, result.billed_ms)  # fmt: skip
        if self.snapshots and readers != self.snapshots[-1].readers:
            self.readers_since = t
        self.snapshots.append(_Snapshot(t, readers, depth, counters))

    def stretch(self, t: float, horizon: float) -> float:
        """Seconds that may be skipped from ``t`` (real time), whole windows; 0 if the system is not steady."""
        if len(self.snapshots) <= self.window:
            return 0.0
        at = bisect.bisect_right(self.changes, t)
        since = self.changes[at - 1] if at else 0.0
        until = min(horizon, self.changes[at] if at < len(self.changes) else math.inf)
        first, last = self.snapshots[0], self.snapshots[-1]
        settled = sum(last.counters[:3]) - sum(first.counters[:3])
        if t - since < self.settle or first.t < self.readers_since or settled <= 0 or not math.isfinite(until):
            return 0.0
        depths = [s.depth for s in self.snapshots]
        if abs(last.depth - first.depth) > 0.2 * sum(depths) / len(depths) + 2 * MESSAGES_PER_RECEIVE:
            return 0.0  # the queue grows or shrinks
        windows = math.floor((until - t) / self.seconds) - 1
        return windows * self.seconds if windows >= 1 else 0.0

    def skip(self, result: SimulationResult, seconds: float, arrived: int, sample_every: float) -> None:
        """Settle ``arrived`` messages and grow the counters as the last window did, for ``seconds``."""
        first, last = self.snapshots[0], self.snapshots[-1]
        d = [b - a for a, b in zip(first.counters, last.counters, strict=True)]
        factor = seconds / self.seconds
        settled = d[0] + d[1] + d[2]
        quarantined, redriven = round(arrived * d[1] / settled), round(arrived * d[2] / settled)
        result.succeeded += arrived - quarantined - redriven
        result.quarantined += quarantined
        result.redriven += redriven
        result.invocations += round(d[3] * factor)
        result.records_invoked += round(d[4] * factor)
        result.throttled_invokes += round(d[5] * factor)
        result.billed_ms += d[6] * factor
        window = result.samples[-self.window :]
        # The last receive of the most retried message comes a reader cycle after its last backoff.
        retried = self._retried_age(result.settled + arrived)
        if retried:
            result.peak_age = max(result.peak_age, retried + saturated_reader(self.mapping, self.workload)[1])
        for j in range(1, round(seconds / sample_every) + 1):
            sample = window[(j - 1) % len(window)]
            result.samples.append(dataclasses.replace(sample, t=last.t + j * sample_every))
        self.snapshots.clear()

    def _retried_age(self, arrived: int) -> float:
        """The backoffs of the most retries that at least one of ``arrived`` messages (all so far) is expected to take:
        a maximum the repeated window cannot show, since a rare message sets it."""
        w, m = self.workload, self.mapping
        if not w.failure_rate:
            return 0.0
        fails = w.failure_rate / (1 - w.poison_rate)
        retries = 0
        while retries < m.max_receive_count - 1 and arrived * (1 - w.poison_rate) * fails ** (retries + 1) >= 1:
            retries += 1
        return sum(m.retry_delay_seconds(n) for n in range(1, retries + 1))


def _rate_changes(workload: Workload) -> list[float]:
    """Real instants where the arrivals change: each burst, and each minute of a CSV with a new rate."""
    a = workload.arrivals
    changes = {b.at_seconds for b in a.bursts}
    changes |= {60.0 * m for m in range(1, len(a.per_minute)) if a.per_minute[m] != a.per_minute[m - 1]}
    if a.per_minute:
        changes.add(60.0 * len(a.per_minute))
    return sorted(changes)


class Simulation:
    def __init__(
        self,
        mapping: Mapping,
        workload: Workload,
        *,
        seed: int = 1,
        sample_every: float = 1.0,
        fast_forward: bool = True,
    ) -> None:
        self.mapping = mapping.for_workload(workload)
        self.workload = workload
        self.sample_every = sample_every
        self.clock = _Clock()
        self.result = SimulationResult()
        rng = random.Random(seed)  # noqa: S311  # a seeded model, not secrets
        self.queue = _Queue(
            self.clock, workload, receive_s=workload.receive_ms / 1000, max_receive_count=self.mapping.max_receive_count
        )
        self.function = _Function(self.clock, self.mapping, workload, rng)
        self.pollers = _Pollers(
            self.clock,
            self.mapping,
            self.queue,
            self.function,
            self.result,
            full=full_batch(mapping, workload),
            policy=_ScalingPolicy(self.mapping, sample_every),
        )
        self.queue.wake = self.pollers.wake
        self.queue.polling = lambda: bool(self.pollers.waiting)
        self.recorder = _Recorder(self.result, sample_every)
        self.fast_forward = _FastForward(self.mapping, workload, sample_every) if fast_forward else None

    def run(self, horizon: float, *, until_drained: bool = True, limit: float = 30 * 86_400) -> SimulationResult:
        """Run to ``horizon`` seconds of arrivals, then (``until_drained``) until every message settled."""
        clock, queue = self.clock, self.queue
        queue.horizon = horizon
        for b in self.workload.arrivals.bursts:
            if b.at_seconds <= horizon:
                clock.at(b.at_seconds, functools.partial(self._burst, b.messages))
        for _ in range(self.mapping.initial_readers):
            self.pollers.start_reader()
        clock.at(0.0, self._tick)
        while clock.events:
            t, _, action = heapq.heappop(clock.events)
            if t > limit or (t > queue.horizon and not (until_drained and self._outstanding())):
                break
            clock.now = t
            action()
        return self.result

    def _tick(self) -> None:
        self.queue.admit()
        self.queue.release_due_retries()
        self.pollers.scale()
        now = self.clock.now
        self.recorder.sample(now, self.queue, self.pollers, self.function)
        if self.fast_forward is not None:
            self._fast_forward()
        if now < self.queue.horizon or self._outstanding():
            self.clock.at(now + self.sample_every, self._tick)

    def _burst(self, messages: int) -> None:
        now = self.clock.now
        self.queue.send(Cohort(now, now, messages, 0))

    def _fast_forward(self) -> None:
        """Skip a steady stretch (``_FastForward``): the arrivals' clock moves on, the simulated one does not."""
        assert self.fast_forward is not None
        queue, last = self.queue, self.result.samples[-1]
        self.fast_forward.observe(last.t, last.readers, last.waiting + last.in_flight, self.result)
        seconds = self.fast_forward.stretch(last.t, queue.horizon + queue.offset)
        if not seconds:
            return
        now = self.clock.now
        before = queue.arrivals_by(now)
        queue.offset += seconds
        queue.horizon -= seconds
        arrived = queue.arrivals_by(now) - before
        queue.skipped += arrived
        queue.sent += arrived
        # Bursts are due at real instants: in simulated time they come the skipped stretch sooner.
        events = self.clock.events
        for i, (t, sequence, action) in enumerate(events):
            if getattr(action, "func", None) == self._burst:
                events[i] = (t - seconds, sequence, action)
        heapq.heapify(events)
        self.fast_forward.skip(self.result, seconds, arrived, self.sample_every)

    def _outstanding(self) -> int:
        """Messages sent or still to arrive that are not settled yet."""
        return self.queue.unsettled(self.result.settled)


def simulate(
    mapping: Mapping, workload: Workload, horizon: float, *, seed: int = 1, fast_forward: bool = True
) -> SimulationResult:
    return Simulation(mapping, workload, seed=seed, fast_forward=fast_forward).run(horizon)
