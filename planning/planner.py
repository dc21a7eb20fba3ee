"""The planner: closed-form answers for a stage and a workload (Little's law, linear scale-up)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from planning.model import (
    Mapping,
    attempts_per_message,
    batch_duration_ms,
    light_batch,
    receives_per_batch,
    saturated_reader,
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
    oldest_age_seconds: float  # a record's wait for its batch to close, plus the batch
    keeps_up: bool

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


def limit_of(mapping: Mapping) -> tuple[int, str]:
    if mapping.function_cap < mapping.mapping_cap:
        return mapping.function_cap, "reserved concurrency" if mapping.function_cap else "account concurrency"
    if mapping.mode == "provisioned":
        return mapping.mapping_cap, "provisioned pollers x 10"
    return mapping.mapping_cap, "maximum concurrency"


def steady_state(mapping: Mapping, workload: Workload, rate: float) -> SteadyState:
    receives = rate * attempts_per_message(mapping, workload)
    records, fill_seconds = light_batch(mapping, workload, receives)
    limit, limited_by = limit_of(mapping)
    cycle = receives_per_batch(records) * workload.receive_ms / 1000
    readers = receives / records * (cycle + batch_duration_ms(mapping, workload, records) / 1000)
    if readers > mapping.initial_readers:
        # More than the idle readers are busy: the mapping scales up while messages wait, so
        # readers find messages waiting and take full batches without waiting for the window.
        records, full_cycle = saturated_reader(mapping, workload)
        fill_seconds, readers = 0.0, receives / records * full_cycle
        cycle = receives_per_batch(records) * workload.receive_ms / 1000
    duration = batch_duration_ms(mapping, workload, records)
    invocations = receives / records
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
        oldest_age_seconds=fill_seconds + cycle + duration / 1000,
        keeps_up=readers <= limit,
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
    start, k, cap = mapping.initial_readers, mapping.scale_up_per_second, mapping.cap
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


def burst(mapping: Mapping, workload: Workload, at_seconds: float, messages: int, rate: float) -> BurstPlan:
    """A burst of ``messages`` sent at once on top of ``rate``: readers scale up from the steady level."""
    attempts = attempts_per_message(mapping, workload)
    receives = rate * attempts
    backlog = messages * attempts
    records, cycle = saturated_reader(mapping, workload)
    per_reader = records / cycle
    start = max(float(mapping.initial_readers), min(mapping.cap, receives / per_reader))
    k, cap = mapping.scale_up_per_second, mapping.cap
    drain = _first_time(lambda t: per_reader * readers_integral(start, k, cap, t) - backlog - receives * t)
    burst_served = _first_time(lambda t: per_reader * readers_integral(start, k, cap, t) - backlog)
    peak = min(cap, start + k * drain) if math.isfinite(drain) else cap
    return BurstPlan(at_seconds, messages, drain, burst_served, peak)


@dataclass(frozen=True)
class Plan:
    mapping: Mapping
    workload: Workload
    steady: SteadyState
    peak: SteadyState
    ramp: Ramp
    bursts: tuple[BurstPlan, ...]


def plan(mapping: Mapping, workload: Workload) -> Plan:
    arrivals = workload.arrivals
    steady = steady_state(mapping, workload, arrivals.mean_rate)
    peak = steady_state(mapping, workload, arrivals.peak_rate)
    ramp = ramp_from_idle(mapping, workload, arrivals.peak_rate)
    bursts = tuple(
        burst(mapping, workload, b.at_seconds, b.messages, arrivals.rate_at(b.at_seconds)) for b in arrivals.bursts
    )
    return Plan(mapping, workload, steady, peak, ramp, bursts)
