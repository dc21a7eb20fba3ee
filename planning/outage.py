"""A downstream outage: what the queue holds, what reaches the DLQ, and how long the drain takes after.

Without a breaker the mapping keeps receiving at full concurrency while the downstream fails
(Lambda does not slow a mapping whose function lists its failures): each message spends a receive
every backoff, and one whose ``maxReceiveCount`` receives all fall inside the outage is quarantined
as ``retries_exhausted``. With the breaker the mapping is paused once it opens: messages wait in
the queue without spending receives (a record on its last allowed receive is sent again), probes
test the downstream at most every cool-down cap, and after the first probe that answers the backlog
drains like a burst from the mapping's initial readers, at most at the downstream's rate limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from planning.model import Mapping, saturated_reader
from planning.planner import burst
from planning.workload import Workload

# Equal jitter: a retry comes back between half and all of its backoff, three quarters on average.
JITTER_LOW, JITTER_MEAN = 0.5, 0.75


@dataclass(frozen=True)
class OutageSide:
    """The outage with or without the breaker."""

    backlog_at_end: float  # messages in the queue when the downstream answers again
    dead_lettered: float  # messages the outage moves to the DLQ (expected)
    dead_lettered_range: tuple[float, float]  # with the shortest and the longest jitter
    calls_while_down: float  # calls the downstream receives while it is down
    drain_seconds: float  # from the end of the outage until the queue is back to normal
    peak_age_seconds: float


@dataclass(frozen=True)
class OutagePlan:
    seconds: float
    rate: float
    sent: float  # messages sent during the outage
    receives: int  # maxReceiveCount
    retry_span_seconds: tuple[float, float]  # first to last receive of a message that always fails
    probe_every_seconds: float
    without_breaker: OutageSide
    with_breaker: OutageSide
    retention_seconds: float

    @property
    def kept(self) -> bool:
        """Every message of the outage outlives it in the queue (retention) with the breaker."""
        return self.with_breaker.peak_age_seconds < self.retention_seconds


def retry_spans(mapping: Mapping, scale: float) -> list[float]:
    """Seconds from a message's first receive to each of its receives, every retry after ``scale`` of its backoff.

    The backoff's ceiling after each receive (or the visibility timeout without a backoff, not jittered)."""
    jitter = scale if mapping.retry_base_seconds > 0 else 1.0
    spans = [0.0]
    for receive in range(1, mapping.max_receive_count):
        spans.append(spans[-1] + jitter * mapping.retry_delay_seconds(receive))
    return spans


def _without_breaker(mapping: Mapping, workload: Workload, seconds: float, rate: float) -> OutageSide:
    """A message sent at t is received at t + span_k for each receive k; all of them inside the outage
    (t + last span < end) sends it to the DLQ. The rest come back after the outage and succeed."""
    mean, shortest, longest = (retry_spans(mapping, s) for s in (JITTER_MEAN, JITTER_LOW, 1.0))

    def dead(spans: list[float]) -> float:
        return rate * max(0.0, seconds - spans[-1])

    calls = rate * sum(max(0.0, seconds - span) for span in mean)
    waiting = rate * min(seconds, mean[-1])
    # The longest wait after the end: the backoff after the most receives a message sent in the outage had.
    receives_done = sum(1 for span in longest[:-1] if span < seconds)
    last_backoff = mapping.retry_delay_seconds(max(1, receives_done))
    return OutageSide(
        backlog_at_end=waiting,
        dead_lettered=dead(mean),
        dead_lettered_range=(dead(longest), dead(shortest)),
        calls_while_down=calls,
        drain_seconds=last_backoff,
        peak_age_seconds=min(seconds, mean[-1]) + last_backoff,
    )


def _with_breaker(mapping: Mapping, workload: Workload, seconds: float, rate: float, probe_every: float) -> OutageSide:
    """The mapping paused for the outage and until the next probe; then the backlog drains as a burst."""
    backlog = rate * (seconds + probe_every)
    after = burst(mapping, workload, 0.0, backlog, rate, from_idle=True)
    probes = math.ceil(seconds / probe_every) if probe_every > 0 else 0
    drain = probe_every + after.seconds_to_drain
    return OutageSide(
        backlog_at_end=rate * seconds,
        dead_lettered=0.0,
        dead_lettered_range=(0.0, 0.0),
        calls_while_down=float(probes),
        drain_seconds=drain,
        # The first message of the outage waits for all of it and the probe, then is among the first taken.
        peak_age_seconds=seconds + probe_every + saturated_reader(mapping, workload)[1]
        if math.isfinite(drain)
        else math.inf,
    )


def outage(mapping: Mapping, workload: Workload, seconds: float, *, probe_every: float) -> OutagePlan:
    """An outage of ``seconds`` at the workload's peak rate, starting from a queue that keeps up."""
    mapping = mapping.for_workload(workload)
    rate = workload.arrivals.peak_rate
    spans = retry_spans(mapping, JITTER_LOW), retry_spans(mapping, 1.0)
    return OutagePlan(
        seconds=seconds,
        rate=rate,
        sent=rate * seconds,
        receives=mapping.max_receive_count,
        retry_span_seconds=(spans[0][-1], spans[1][-1]),
        probe_every_seconds=probe_every,
        without_breaker=_without_breaker(mapping, workload, seconds, rate),
        with_breaker=_with_breaker(mapping, workload, seconds, rate, probe_every),
        retention_seconds=mapping.retention_seconds,
    )
