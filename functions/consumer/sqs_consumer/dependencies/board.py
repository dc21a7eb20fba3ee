"""The breakers of one function instance: their shared state read through a short cache, each transition
written with a conditional write and acted on by the one instance that made it.

- ``admit``: may a record depending on it start? Read at most once per ``cache_seconds`` for all the
  dependencies a batch needs, one store round trip (none at all for a batch whose routes declare none).
  Half-open, one record runs as the trial, in one instance (a conditional write takes it); others wait.
- ``report``: a batch's ``DependencyUnavailable`` failures and a half-open breaker's successes, one
  conditional write per dependency that changes (none while all is well: a success writes nothing).
- ``probe``: the scheduled probe's steps (``probe``: health check or trial; ``restore``: the mapping's
  configured concurrency, once the trial at the minimum went well).

A transition to open pauses the mapping and schedules the probe; to closed resumes the mapping at the
minimum concurrency and schedules the ``restore`` step. Each is logged, with an EMF document. A store
that cannot be read fails open (records run, as without breakers), logged: the breaker must never be
what stops a healthy dependency's records.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from sqs_consumer.dependencies import Dependency
from sqs_consumer.dependencies.breaker import (
    CLOSED,
    BreakerMode,
    BreakerPolicy,
    BreakerState,
    closed,
    probing,
    reopened,
    trial_taken,
    with_failures,
)
from sqs_consumer.dependencies.control import MIN_MAXIMUM_CONCURRENCY, MappingControl, ProbeScheduler
from sqs_consumer.dependencies.store import BreakerStore
from sqs_consumer.errors import describe
from sqs_consumer.observability import logger, write_breaker_metrics

# How many times a transition is tried against states other instances wrote meanwhile.
WRITE_ATTEMPTS = 3
PROBE = "probe"
RESTORE = "restore"
# An open breaker that holds records back reports how long it has been open this often, per instance.
METRIC_SECONDS = 60.0


@dataclass
class BoardWiring:
    """What a board acts with: the store, and (in Lambda) the mapping, the scheduler and the metrics' names."""

    store_factory: Callable[[], BreakerStore]
    policy: BreakerPolicy = field(default_factory=BreakerPolicy)
    mapping: MappingControl | None = None
    probes: ProbeScheduler | None = None
    # The mapping's MaximumConcurrency as the stage configures it (None: Lambda's default, or provisioned pollers).
    max_concurrency: int | None = None
    cache_seconds: float = 2.0
    metrics: tuple[str, str] | None = None  # (namespace, service)
    clock: Callable[[], float] = time.time


@dataclass(frozen=True, slots=True)
class Admission:
    """A batch's breakers that are not closed (``held``: their states as now known) and, among them, the
    half-open ones whose trial record this batch runs (``trials``): one record each, the rest waiting."""

    held: dict[str, BreakerState]
    trials: frozenset[str]


class BreakerBoard:
    def __init__(self, wiring: BoardWiring) -> None:
        self._w = wiring
        self._store: BreakerStore | None = None
        self._cache: dict[str, tuple[BreakerState, float]] = {}
        self._reported_at: dict[str, float] = {}
        # What a probe's schedule invokes: this function as Lambda invoked it (its alias), set by the entry point.
        self.function_arn: str | None = None

    @property
    def wiring(self) -> BoardWiring:
        return self._w

    @property
    def policy(self) -> BreakerPolicy:
        return self._w.policy

    def now(self) -> float:
        return self._w.clock()

    def _backend(self) -> BreakerStore:
        if self._store is None:
            self._store = self._w.store_factory()
        return self._store

    def states(self, names: Iterable[str]) -> dict[str, BreakerState]:
        """Each dependency's state, from the cache when read within ``cache_seconds``; one read for the rest."""
        now, wanted = self.now(), list(dict.fromkeys(names))
        stale = [
            name for name in wanted if name not in self._cache or now - self._cache[name][1] >= self._w.cache_seconds
        ]
        if stale:
            try:
                for name, state in self._backend().read(stale).items():
                    self._cache[name] = (state, now)
            except Exception as exc:  # fail open: without its state, a breaker stops nothing
                logger.warning("Breaker states not read; records run as if closed", dependencies=stale,
                               error=describe(exc))  # fmt: skip
                return {name: self._cache.get(name, (CLOSED, now))[0] for name in wanted}
        return {name: self._cache[name][0] for name in wanted}

    def admit(self, states: Mapping[str, BreakerState], queue_arn: str) -> Admission:
        """The breakers among ``states`` that hold their records back, and those whose one trial record this
        batch runs. A half-open breaker's trial goes to the instance whose conditional write takes it; an open
        one whose probe is overdue (its schedule lost, or no scheduler) turns half-open here, its trial taken
        in the same write, by whichever instance gets there first."""
        now, held, trials = self.now(), {}, set()
        for name, state in states.items():
            if state.mode is BreakerMode.CLOSED:
                continue
            if self._takes_trial(name, state, now, queue_arn):
                trials.add(name)
            held[name] = current = self._cache.get(name, (state, now))[0]
            if name not in trials and now - self._reported_at.get(name, 0.0) >= METRIC_SECONDS:
                # How long it has been open, once a minute per instance: the alarm sees it without probes too.
                self._reported_at[name] = now
                self._metrics(name, current)
        return Admission(held, frozenset(trials))

    def _takes_trial(self, name: str, state: BreakerState, now: float, queue_arn: str) -> bool:
        lease = self.policy.cool_down_seconds

        def take(s: BreakerState) -> BreakerState:
            if s.is_open and s.probe_at is not None and now >= s.probe_at + lease:  # its probe overdue
                return trial_taken(probing(s, now), now)
            return trial_taken(s, now) if s.trial_free(now, lease) else s

        if take(state) == state:
            return False
        written = self._transition(name, state, take, queue_arn)
        return written is not None and written.mode is BreakerMode.HALF_OPEN and written.trial_at == now

    def hold_seconds(self, state: BreakerState, now: float) -> float:
        """How long a record held back by ``state`` waits in the queue: until the next probe (open; one overdue,
        until an instance may run the trial itself), or until the trial's lease ends (half-open)."""
        lease = self.policy.cool_down_seconds
        if state.mode is BreakerMode.OPEN:
            probe_at = state.probe_at if state.probe_at is not None else now
            return probe_at - now if probe_at > now else probe_at + lease - now
        return lease - (now - state.trial_at) if state.trial_at is not None else lease

    def report(self, failures: Mapping[str, tuple[int, str]], successes: Iterable[str], queue_arn: str) -> None:
        """A batch's outcomes: failures count toward opening; a success closes a half-open breaker."""
        now, policy = self.now(), self.policy
        for name, (count, reason) in failures.items():

            def failed(s: BreakerState, c: int = count, r: str = reason) -> BreakerState:
                return with_failures(s, c, now, policy, r)

            self._transition(name, self.states([name])[name], failed, queue_arn)
        for name in successes:
            # Read when the batch started (admit): a success never costs a store round trip of its own.
            state = self._cache.get(name, (CLOSED, now))[0]
            if name not in failures and state.mode is BreakerMode.HALF_OPEN:
                self._transition(name, state, _when(BreakerMode.HALF_OPEN, _closing("breaker", "a trial succeeded")),
                                 queue_arn)  # fmt: skip

    def probe(self, dependency: Dependency, step: str, queue_arn: str) -> BreakerState:
        """A scheduled probe: see the module doc. Answers the breaker's state after it."""
        name = dependency.name
        self._cache.pop(name, None)  # a probe acts on the stored state, never a cached one
        state = self.states([name])[name]
        if step == RESTORE:
            if state.mode is BreakerMode.CLOSED:
                self._resume(queue_arn, self._w.max_concurrency)
            return state
        if state.mode is not BreakerMode.OPEN:
            return state
        self._metrics(name, state)
        now, policy = self.now(), self.policy
        if dependency.health_check is None:  # one trial batch at the minimum concurrency decides
            change = _when(BreakerMode.OPEN, lambda s: probing(s, now))
        else:
            try:
                dependency.health_check()
                change = _when(BreakerMode.OPEN, _closing("probe", "health check answered"))
            except Exception as exc:
                reason = f"health check failed: {describe(exc)}"
                change = _when(BreakerMode.OPEN, lambda s: reopened(s, now, policy, reason))
        return self._transition(name, state, change, queue_arn) or state

    def _transition(
        self, name: str, state: BreakerState, change: Callable[[BreakerState], BreakerState], queue_arn: str
    ) -> BreakerState | None:
        """Write ``change(state)`` conditionally, again on what another instance wrote; act on the change if this
        instance made it. Answers the state now held (None when the store could not be written)."""
        for _ in range(WRITE_ATTEMPTS):
            new = change(state)
            if new == state:
                return state
            try:
                found = self._backend().write(name, state.version, new)
            except Exception as exc:
                logger.warning("Breaker state not written", dependency=name, error=describe(exc))
                return None
            if found is None:
                self._cache[name] = (new, self.now())
                if new.mode is not state.mode or new.probe_at != state.probe_at:  # a probe that found it down too
                    self._acted(name, state, new, queue_arn)
                return new
            state = found
            self._cache[name] = (found, self.now())
        return state

    def _acted(self, name: str, old: BreakerState, new: BreakerState, queue_arn: str) -> None:
        logger.warning("Dependency breaker changed", dependency=name, old=old.mode.value, new=new.mode.value,
                       by=new.changed_by, reason=new.reason, probe_at=new.probe_at,
                       cool_down_seconds=new.cool_down_seconds or None)  # fmt: skip
        self._metrics(name, new, transition=True)
        try:
            if new.mode is BreakerMode.OPEN:
                if self._w.mapping is not None and old.mode is not BreakerMode.OPEN:
                    self._w.mapping.pause(queue_arn)
                self._schedule(name, PROBE, new.probe_at or self.now(), queue_arn)
            elif new.mode is BreakerMode.HALF_OPEN:
                self._resume(queue_arn, MIN_MAXIMUM_CONCURRENCY)
            else:
                self._resume(queue_arn, MIN_MAXIMUM_CONCURRENCY)
                self._schedule(name, RESTORE, self.now() + self.policy.cool_down_seconds, queue_arn)
        except Exception as exc:  # the alarm on open breakers tells the operator; the CLI can act by hand
            logger.error("Breaker change not acted on (mapping or probe schedule)", dependency=name,
                         new=new.mode.value, error=describe(exc))  # fmt: skip

    def _resume(self, queue_arn: str, concurrency: int | None) -> None:
        if self._w.mapping is None:
            return
        configured = self._w.max_concurrency
        if concurrency is not None and configured is not None:
            concurrency = min(concurrency, configured)
        self._w.mapping.resume(queue_arn, concurrency if concurrency is not None else configured)

    def _schedule(self, name: str, step: str, at: float, queue_arn: str) -> None:
        if self._w.probes is not None:
            self._w.probes.schedule(name, step, at, queue_arn, self.function_arn or "")

    def _metrics(self, name: str, state: BreakerState, *, transition: bool = False) -> None:
        if self._w.metrics is None:
            return
        open_seconds = self.now() - state.opened_at if state.mode is not BreakerMode.CLOSED and state.opened_at else 0
        values = {"BreakerOpenSeconds": max(0.0, open_seconds), "BreakerOpen": float(state.is_open)}
        if transition:
            values["BreakerTransitions"] = 1.0
        write_breaker_metrics(*self._w.metrics, name, values)


Change = Callable[[BreakerState], BreakerState]


def _when(mode: BreakerMode, change: Change) -> Change:
    """``change``, applied only to a breaker still in ``mode`` (another instance may have moved it on)."""
    return lambda state: change(state) if state.mode is mode else state


def _closing(by: str, reason: str) -> Change:
    return lambda state: closed(state, by, reason)
