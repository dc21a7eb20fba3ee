"""A dependency's circuit breaker: its state as a value, and the transitions between states as pure functions.

- **closed**: records run. Failures (``DependencyUnavailable``) are counted in a window of
  ``window_seconds`` that starts with its first failure; ``threshold`` of them in one window open it.
- **open**: no record that depends on it runs; they wait in the queue until ``probe_at``. The
  cool-down starts at ``cool_down_seconds`` and doubles each time a probe finds the dependency still
  down, up to ``cool_down_cap_seconds``.
- **half-open**: a probe is deciding. A successful health check or trial closes it (the cool-down
  goes back to its start); a failure opens it again for the doubled cool-down. A trial is one record:
  the instance whose conditional write takes it (``trial_taken``) runs that one; every other record
  waits, until the trial's answer or, if it never comes (the instance was killed), until its lease ends.

Nothing here reads a clock or a store: the state is shared by every instance through the store
(store.py), each change a conditional write on its ``version``, so that one instance, and only one,
makes each transition and acts on it (pauses the mapping, schedules the probe).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class BreakerMode(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When a breaker opens and how long it stays open (the stage's breaker settings)."""

    threshold: int = 5
    window_seconds: float = 10.0
    cool_down_seconds: float = 15.0
    cool_down_cap_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.threshold < 1 or self.window_seconds <= 0 or self.cool_down_seconds <= 0:
            raise ValueError("a breaker needs threshold >= 1, window_seconds > 0 and cool_down_seconds > 0")
        if self.cool_down_cap_seconds < self.cool_down_seconds:
            raise ValueError("cool_down_cap_seconds must be >= cool_down_seconds")


@dataclass(frozen=True, slots=True)
class BreakerState:
    """What the store holds for one dependency. Times are epoch seconds; ``version`` counts the writes."""

    mode: BreakerMode = BreakerMode.CLOSED
    failures: int = 0
    window_started_at: float = 0.0
    opened_at: float | None = None
    probe_at: float | None = None
    cool_down_seconds: float = 0.0
    version: int = 0
    # Who made the last change ("breaker", "probe", "operator") and why: for the operator's view.
    changed_by: str = ""
    reason: str = ""
    # Half-open: when an instance took the one trial record (None: nobody yet).
    trial_at: float | None = None

    @property
    def is_open(self) -> bool:
        return self.mode is BreakerMode.OPEN

    def seconds_to_probe(self, now: float) -> float:
        return max(0.0, (self.probe_at or now) - now)

    def trial_free(self, now: float, lease_seconds: float) -> bool:
        """Half-open with nobody running its trial (or the one who took it silent past ``lease_seconds``)."""
        return self.mode is BreakerMode.HALF_OPEN and (self.trial_at is None or now - self.trial_at >= lease_seconds)


CLOSED = BreakerState()


def with_failures(state: BreakerState, failures: int, now: float, policy: BreakerPolicy, reason: str) -> BreakerState:
    """``failures`` more calls found the dependency unavailable: the state they lead to (the same one when
    they change nothing: a breaker already open is not opened again by records that were running)."""
    if failures <= 0 or state.mode is BreakerMode.OPEN:
        return state
    if state.mode is BreakerMode.HALF_OPEN:  # the trial failed: open again, for longer
        return opened(state, now, _doubled(state.cool_down_seconds, policy), "breaker", reason)
    in_window = now - state.window_started_at < policy.window_seconds
    count = state.failures + failures if in_window else failures
    started = state.window_started_at if in_window else now
    if count >= policy.threshold:
        return opened(state, now, policy.cool_down_seconds, "breaker", reason)
    return replace(state, failures=count, window_started_at=started, version=state.version + 1)


def opened(state: BreakerState, now: float, cool_down: float, by: str, reason: str) -> BreakerState:
    return BreakerState(BreakerMode.OPEN, 0, now, state.opened_at if state.mode is not BreakerMode.CLOSED else now,
                        now + cool_down, cool_down, state.version + 1, by, reason)  # fmt: skip


def probing(state: BreakerState, now: float) -> BreakerState:
    """A probe starts: half-open, until its health check or its trial batch says how the dependency is."""
    return replace(state, mode=BreakerMode.HALF_OPEN, version=state.version + 1, changed_by="probe",
                   reason="cool-down over: probing", trial_at=None)  # fmt: skip


def trial_taken(state: BreakerState, now: float) -> BreakerState:
    """An instance takes the half-open breaker's one trial record (the others' records keep waiting)."""
    return replace(state, trial_at=now, version=state.version + 1)


def reopened(state: BreakerState, now: float, policy: BreakerPolicy, reason: str) -> BreakerState:
    """A probe found the dependency still down: open again, the cool-down doubled (to its cap)."""
    return opened(state, now, _doubled(state.cool_down_seconds, policy), "probe", reason)


def closed(state: BreakerState, by: str, reason: str) -> BreakerState:
    return BreakerState(version=state.version + 1, changed_by=by, reason=reason)


def _doubled(cool_down: float, policy: BreakerPolicy) -> float:
    return min(policy.cool_down_cap_seconds, max(policy.cool_down_seconds, cool_down * 2))
