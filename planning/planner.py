"""The planner: closed-form answers for a stage and a workload (Little's law, linear scale-up)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from planning.model import (
    Mapping,
    attempts_per_message,
    batch_duration_ms,
    full_batch,
    light_batch,
    pollers_needed,
    reader_cycle_seconds,
    saturated_reader,
    sqs_message_bytes,
)
from planning.workload import Workload


@dataclass(frozen=True)
class SteadyState:
    rate: float  # messages a second
    receives_per_second: float  # records handed to the function a second, retries included
    records_per_batch: float
    batch_ms: float
    invocations_per_second: float
    concurrency: float  # concurrent executions (Little's law: invocations a second x duration)
    readers: float  # concurrent batches, the mapping's receive round trips included
    limit: int
    limited_by: str
    oldest_age_seconds: float  # a record's wait for its batch to close, plus the batch; inf if it never keeps up
    keeps_up: bool
    pollers_needed: float | None = None  # provisioned mode: 10 invokes and 1 MB/s a poller

    @property
    def headroom(self) -> float:
        return self.limit - self.readers


@dataclass(frozen=True)
class Ramp:
    """From idle (the mapping's initial readers) to a rate, scaling up while messages wait."""

    rate: float
    seconds_to_scale: float  # until the readers can take the rate
    seconds_to_drain: float  # until the backlog built meanwhile is gone
    peak_backlog: float
    peak_age_seconds: float
    readers_needed: float
    keeps_up: bool


@dataclass(frozen=True)
class BurstPlan:
    at_seconds: float
    messages: int
    seconds_to_drain: float
    peak_age_seconds: float
    peak_readers: float


def limit_of(mapping: Mapping, per_reader: float) -> tuple[int, str]:
    """Batches allowed at once, and what binds them (a rate cap counts as the batches that carry it)."""
    if mapping.reader_cap(per_reader) < mapping.cap:
        return max(1, math.floor(mapping.reader_cap(per_reader))), mapping.rate_cap_source
    if mapping.function_cap < mapping.mapping_cap:
        return mapping.function_cap, mapping.function_cap_source
    if mapping.mode == "provisioned":
        return mapping.mapping_cap, "provisioned pollers x 10"
    return mapping.mapping_cap, "maximum concurrency"


def steady_state(mapping: Mapping, workload: Workload, rate: float) -> SteadyState:
    receives = rate * attempts_per_message(mapping, workload)
    records, fill_seconds = light_batch(mapping, workload, receives)
    full, full_cycle = saturated_reader(mapping, workload)
    limit, limited_by = limit_of(mapping, full / full_cycle)
    readers = receives / records * reader_cycle_seconds(mapping, workload, records)
    if mapping.window_seconds > 0 and readers > mapping.initial_readers:
        # More readers busy than idle ones gather: the mapping scaled up while messages waited, and
        # a reader back from a batch finds its window full sooner. Full batches are the limit of
        # that (the simulation shows fewer where the scale-up overshot: docs/decisions/042-planning-simplifications.md).
        records = float(full_batch(mapping, workload))
        fill_seconds, readers = 0.0, receives / records * reader_cycle_seconds(mapping, workload, records)
    # With a backlog, batches fill: the most the limit can take.
    keeps_up = receives / full * full_cycle <= mapping.reader_cap(full / full_cycle)
    duration = batch_duration_ms(mapping, workload, records)
    invocations = receives / records
    bytes_each = sqs_message_bytes(mapping.max_message_bytes, workload)
    age = fill_seconds + reader_cycle_seconds(mapping, workload, records)
    return SteadyState(
        rate=rate,
        receives_per_second=receives,
        records_per_batch=records,
        batch_ms=duration,
        invocations_per_second=invocations,
        concurrency=invocations * duration / 1000,
        readers=readers,
        limit=limit,
        limited_by=limited_by,
        # A queue that never keeps up grows without end: its oldest message has no bound.
        oldest_age_seconds=age if keeps_up else math.inf,
        keeps_up=keeps_up,
        pollers_needed=pollers_needed(receives, readers, bytes_each) if mapping.mode == "provisioned" else None,
    )


def readers_integral(start: float, per_second: float, cap: float, t: float) -> float:
    """Reader-seconds in [0, t] when readers grow linearly from ``start`` to ``cap``."""
    start = min(start, cap)
    to_cap = (cap - start) / per_second if per_second > 0 else math.inf
    if t <= to_cap:
        return start * t + per_second * t * t / 2
    return start * to_cap + per_second * to_cap * to_cap / 2 + cap * (t - to_cap)


def _first_time(f: Callable[[float], float], horizon: float = 30 * 86_400.0) -> float:
    """The first t >= 0 where ``f(t) >= 0`` (``f`` rising once it is), by bisection; inf if none."""
    if f(horizon) < 0:
        return math.inf
    low, high = 0.0, horizon
    for _ in range(100):
        middle = (low + high) / 2
        if f(middle) >= 0:
            high = middle
        else:
            low = middle
    return high


def ramp_from_idle(mapping: Mapping, workload: Workload, rate: float) -> Ramp:
    receives = rate * attempts_per_message(mapping, workload)
    records, cycle = saturated_reader(mapping, workload)
    per_reader = records / cycle
    needed = receives / per_reader
    start, k, cap = mapping.initial_readers, mapping.scale_up_per_second, mapping.reader_cap(per_reader)
    base_age = steady_state(mapping, workload, rate).oldest_age_seconds
    if needed > cap:
        return Ramp(rate, math.inf, math.inf, math.inf, math.inf, needed, keeps_up=False)
    if needed <= start:
        return Ramp(rate, 0.0, 0.0, 0.0, base_age, needed, keeps_up=True)
    to_scale = (needed - start) / k
    backlog = receives * to_scale - per_reader * readers_integral(start, k, cap, to_scale)
    drain = _first_time(
        lambda t: per_reader * readers_integral(start, k, cap, to_scale + t) - receives * (to_scale + t)
    )
    return Ramp(
        rate=rate,
        seconds_to_scale=to_scale,
        seconds_to_drain=to_scale + drain,
        peak_backlog=backlog,
        # FIFO order: the head's age is (arrived - served) / rate, largest when the readers catch up.
        peak_age_seconds=backlog / receives + base_age,
        readers_needed=needed,
        keeps_up=True,
    )


@dataclass(frozen=True)
class ScaleUp:
    """Saturated readers growing linearly from ``start`` to ``cap``, each taking ``records`` a batch."""

    start: float
    per_second: float
    cap: float
    per_reader: float  # messages a second one saturated reader gets through
    records: float

    def taken_by(self, t: float) -> float:
        """Messages taken from the queue by ``t``: those done, and a batch in each reader."""
        readers = min(self.cap, self.start + self.per_second * t)
        return self.per_reader * readers_integral(self.start, self.per_second, self.cap, t) + readers * self.records


def burst(
    mapping: Mapping, workload: Workload, at_seconds: float, messages: float, rate: float, *, from_idle: bool = False
) -> BurstPlan:
    """A burst of ``messages`` sent at once on top of ``rate``: readers scale up from the steady level
    (``from_idle``: from the mapping's initial readers, as after a pause).

    The queue is empty once the readers have taken the burst and what arrived meanwhile; the last
    batch taken then still runs one reader cycle, and its messages are the oldest until it is done.
    """
    attempts = attempts_per_message(mapping, workload)
    receives = rate * attempts
    backlog = messages * attempts
    records, cycle = saturated_reader(mapping, workload)
    per_reader = records / cycle
    k, cap = mapping.scale_up_per_second, mapping.reader_cap(per_reader)
    steady_readers = 0.0 if from_idle else min(cap, receives / per_reader)
    start = min(cap, max(float(mapping.initial_readers), steady_readers))
    readers = ScaleUp(start, k, cap, per_reader, records)
    emptied = _first_time(lambda t: readers.taken_by(t) - backlog - receives * t)
    burst_taken = _first_time(lambda t: readers.taken_by(t) - backlog)
    peak = min(cap, start + k * emptied) if math.isfinite(emptied) else cap
    # The last failing messages of the burst come back after every backoff of their receives.
    retried = sum(mapping.retry_delay_seconds(n) for n in _retries_expected(mapping, workload, messages))
    drained = (
        max(emptied + cycle, burst_taken + cycle * mapping.max_receive_count + retried)
        if retried
        else (emptied + cycle)
    )
    return BurstPlan(at_seconds, round(messages), drained, burst_taken + cycle, peak)


def _retries_expected(mapping: Mapping, workload: Workload, messages: float) -> range:
    """The receives after which at least one message of ``messages`` is still expected to fail."""
    f = workload.failure_rate
    if not f:
        return range(1, 1)
    last = 1
    while last < mapping.max_receive_count and messages * (1 - workload.poison_rate) * f**last >= 1:
        last += 1
    return range(1, last)


@dataclass(frozen=True)
class Plan:
    mapping: Mapping
    workload: Workload
    steady: SteadyState
    peak: SteadyState
    ramp: Ramp
    bursts: tuple[BurstPlan, ...]

    @property
    def worst_age_seconds(self) -> float:
        """The oldest a message gets: at the mean rate, scaling up from idle, or in a burst (inf: no bound)."""
        return max(self.steady.oldest_age_seconds, self.ramp.peak_age_seconds,
                   *(b.peak_age_seconds for b in self.bursts))  # fmt: skip


def plan(mapping: Mapping, workload: Workload) -> Plan:
    mapping = mapping.for_workload(workload)
    arrivals = workload.arrivals
    steady = steady_state(mapping, workload, arrivals.mean_rate)
    peak = steady_state(mapping, workload, arrivals.peak_rate)
    ramp = ramp_from_idle(mapping, workload, arrivals.peak_rate)
    bursts = tuple(
        burst(mapping, workload, b.at_seconds, b.messages, arrivals.rate_at(b.at_seconds)) for b in arrivals.bursts
    )
    return Plan(mapping, workload, steady, peak, ramp, bursts)
