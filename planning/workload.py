"""A workload: how messages arrive, how long the handler takes, what goes wrong."""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

# The z-score of the 99th percentile: a lognormal's sigma from its median and p99.
Z99 = NormalDist().inv_cdf(0.99)
SECONDS_PER_MONTH = 730 * 3600  # AWS bills a month as 730 hours
# The fastest SQS receive round trip the planner accepts: a same-region call takes milliseconds.
MIN_RECEIVE_MS = 1.0


class WorkloadError(ValueError):
    """A workload that cannot be planned; the message says what to change."""


@dataclass(frozen=True)
class HandlerTime:
    """Time one record takes in its handler, in ms: a lognormal fitted to p50 and p99, or measured samples.

    A lognormal is the usual shape of service times (positive, right-skewed); p50 = p99 means a
    constant time.
    """

    p50_ms: float
    p99_ms: float
    samples_ms: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.samples_ms:
            if not all(math.isfinite(s) and s >= 0 for s in self.samples_ms):
                raise WorkloadError("handler times must be finite numbers >= 0")
            return
        if not (math.isfinite(self.p50_ms) and math.isfinite(self.p99_ms)):
            raise WorkloadError(f"handler times must be finite (got p50 {self.p50_ms:g}, p99 {self.p99_ms:g} ms)")
        if self.p50_ms <= 0:
            raise WorkloadError(f"handler p50 must be > 0 ms (got {self.p50_ms:g})")
        if self.p99_ms < self.p50_ms:
            raise WorkloadError(f"handler p99 ({self.p99_ms:g} ms) must be >= p50 ({self.p50_ms:g} ms)")

    @classmethod
    def measured(cls, samples_ms: Sequence[float]) -> HandlerTime:
        if not samples_ms:
            raise WorkloadError("no handler times measured")
        ordered = tuple(sorted(float(s) for s in samples_ms))
        return cls(_quantile(ordered, 0.5), _quantile(ordered, 0.99), ordered)

    @property
    def _mu(self) -> float:
        return math.log(self.p50_ms) if self.p50_ms > 0 else 0.0

    @property
    def _sigma(self) -> float:
        return (math.log(self.p99_ms) - math.log(self.p50_ms)) / Z99

    @property
    def mean_ms(self) -> float:
        if self.samples_ms:
            return sum(self.samples_ms) / len(self.samples_ms)
        return math.exp(self._mu + self._sigma**2 / 2)

    @property
    def stdev_ms(self) -> float:
        if self.samples_ms:
            mean = self.mean_ms
            return math.sqrt(sum((s - mean) ** 2 for s in self.samples_ms) / len(self.samples_ms))
        return math.sqrt((math.exp(self._sigma**2) - 1) * math.exp(2 * self._mu + self._sigma**2))

    def quantile_ms(self, q: float) -> float:
        if self.samples_ms:
            return _quantile(self.samples_ms, q)
        return math.exp(self._mu + self._sigma * NormalDist().inv_cdf(q))

    def expected_max_ms(self, k: int) -> float:
        """The expected longest of ``k`` records run side by side (order statistics)."""
        if k <= 1:
            return self.mean_ms
        if self.samples_ms:
            n = len(self.samples_ms)
            return sum(x * ((i / n) ** k - ((i - 1) / n) ** k) for i, x in enumerate(self.samples_ms, start=1))
        # Blom's approximation of the expected k-th order statistic of a normal, through the log.
        return math.exp(self._mu + self._sigma * NormalDist().inv_cdf((k - 0.375) / (k + 0.25)))

    def sampler(self, rng: random.Random) -> _Sampler:
        return _Sampler(self, rng)


class _Sampler:
    def __init__(self, handler: HandlerTime, rng: random.Random) -> None:
        self._samples = handler.samples_ms
        self._mu, self._sigma, self._p50 = handler._mu, handler._sigma, handler.p50_ms
        self._rng = rng

    def __call__(self) -> float:
        if self._samples:
            return self._rng.choice(self._samples)
        return self._p50 if self._sigma == 0 else math.exp(self._rng.gauss(self._mu, self._sigma))


def _quantile(ordered: Sequence[float], q: float) -> float:
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Burst:
    at_seconds: float
    messages: int


@dataclass(frozen=True)
class ArrivalProfile:
    """Messages per second: a steady rate, or one per minute (a CSV), plus bursts sent at once."""

    steady_rate: float = 0.0
    per_minute: tuple[float, ...] = ()
    bursts: tuple[Burst, ...] = ()

    def __post_init__(self) -> None:
        if not all(math.isfinite(r) for r in (self.steady_rate, *self.per_minute)):
            raise WorkloadError("arrival rates must be finite numbers")
        if self.steady_rate < 0 or any(m < 0 for m in self.per_minute):
            raise WorkloadError("arrival rates cannot be negative")
        if any(b.messages < 1 or b.at_seconds < 0 for b in self.bursts):
            raise WorkloadError("a burst needs at least 1 message and a time >= 0")

    @classmethod
    def from_csv(cls, path: Path, bursts: tuple[Burst, ...] = ()) -> ArrivalProfile:
        """A CSV with one row per minute; the last column of each row is the messages in that minute."""
        counts: list[float] = []
        try:
            with path.open(newline="") as handle:
                for row in csv.reader(handle):
                    if not row or not row[-1].strip():
                        continue
                    try:
                        counts.append(float(row[-1]))
                    except ValueError:
                        if counts:  # only a header may be non-numeric
                            raise WorkloadError(f"{path}: {row[-1]!r} is not a number of messages") from None
        except OSError as error:
            raise WorkloadError(f"cannot read {path}: {error.strerror}") from None
        if not counts:
            raise WorkloadError(f"{path}: no rows of messages per minute")
        return cls(per_minute=tuple(counts), bursts=bursts)

    def rate_at(self, t: float) -> float:
        if self.per_minute:
            minute = int(t // 60)
            return self.per_minute[minute] / 60 if minute < len(self.per_minute) else 0.0
        return self.steady_rate

    def arrived_by(self, t: float) -> float:
        """Messages sent in [0, t], bursts included."""
        if self.per_minute:
            whole = min(int(t // 60), len(self.per_minute))
            total = sum(self.per_minute[:whole])
            if whole < len(self.per_minute):
                total += self.per_minute[whole] * (t - whole * 60) / 60
        else:
            total = self.steady_rate * t
        return total + sum(b.messages for b in self.bursts if b.at_seconds <= t)

    @property
    def mean_rate(self) -> float:
        """The long-run rate a month is billed at: the CSV's mean, bursts left out."""
        if self.per_minute:
            return sum(self.per_minute) / (60 * len(self.per_minute))
        return self.steady_rate

    @property
    def peak_rate(self) -> float:
        return max(self.per_minute) / 60 if self.per_minute else self.steady_rate


@dataclass(frozen=True)
class Workload:
    arrivals: ArrivalProfile
    handler: HandlerTime
    payload_bytes: int = 1_024
    # Per receive: the share of records whose handler raises (retried), and of poison (quarantined at once).
    failure_rate: float = 0.0
    poison_rate: float = 0.0
    # Copies of an event already processed (a producer's retry): acknowledged by the idempotency table.
    duplicate_rate: float = 0.0
    # Records of one batch run side by side: 1 for plain handlers, MAX_CONCURRENT_RECORDS for async ones.
    records_in_parallel: int = 1
    # FIFO queues: message groups with messages waiting (Lambda runs at most one batch per group at once).
    message_groups: int | None = None
    # The mapping's round trip per receive (and the delete that settles a batch), outside the function.
    receive_ms: float = 20.0
    # Time each invocation spends beyond its records (billed): parsing, metrics, the idempotency calls.
    invocation_overhead_ms: float = 0.0
    # The downstream's rate limit, calls a second across every instance (one call a record), if any.
    rate_limit_per_second: float | None = None

    def __post_init__(self) -> None:
        for name in ("failure_rate", "poison_rate", "duplicate_rate"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise WorkloadError(f"{name.replace('_', ' ')} must be in [0, 1) (got {value:g})")
        if self.failure_rate + self.poison_rate >= 1:
            raise WorkloadError("failure rate + poison rate must be < 1")
        if self.payload_bytes < 1:
            raise WorkloadError("payload size must be >= 1 byte")
        if self.message_groups is not None and self.message_groups < 1:
            raise WorkloadError("message groups must be >= 1")
        if self.records_in_parallel < 1:
            raise WorkloadError("records in parallel must be >= 1")
        if not (math.isfinite(self.receive_ms) and math.isfinite(self.invocation_overhead_ms)):
            raise WorkloadError("receive and invocation overheads must be finite")
        # A receive is a network round trip: never instant (at 0 the mapping would poll without end).
        if self.receive_ms < MIN_RECEIVE_MS or self.invocation_overhead_ms < 0:
            raise WorkloadError(
                f"the receive round trip must be >= {MIN_RECEIVE_MS:g} ms and the invocation overhead >= 0 "
                f"(got {self.receive_ms:g} and {self.invocation_overhead_ms:g} ms)"
            )
        if self.rate_limit_per_second is not None and not (0 < self.rate_limit_per_second < math.inf):
            raise WorkloadError(f"the rate limit must be a number > 0 a second (got {self.rate_limit_per_second:g})")

    @property
    def monthly_messages(self) -> float:
        return self.arrivals.mean_rate * SECONDS_PER_MONTH + sum(b.messages for b in self.arrivals.bursts)
