"""The breakers' stage: "may this record start?" before the claims, "what did the calls come to?" after the run.

- ``gate``: a record whose route depends on a dependency with an open breaker is not started (nor
  claimed): it waits in the queue until the next probe (its visibility), or, on its last receive, is
  sent again as a new message (a standard queue), never quarantined for the outage. Half-open, one
  record of one instance's batch runs as the trial; every other one waits the same way.
- ``settle``: the batch's ``DependencyUnavailable`` failures are counted toward each breaker (one
  conditional write per dependency that changes), and a half-open breaker's successes close it. A failed
  record whose breaker is not closed (open now, or half-open still) waits like a gated one, and on its
  last receive is sent again whatever path it took (gated, a trial, rate-limited, opened mid-batch by
  its own batch or another instance, an async handler); on its last receive with its breaker closed
  (a lone failure), it is quarantined as ``retries_exhausted``, as any failure is.

A batch whose routes declare no dependency costs nothing here; one that does costs one store read per
``cache_seconds`` (dependencies/board.py), none per record.
"""

from __future__ import annotations

from collections import Counter

from sqs_consumer.dependencies.board import Admission, BreakerBoard
from sqs_consumer.dependencies.breaker import BreakerMode, BreakerState
from sqs_consumer.errors import BreakerOpenError, DependencyUnavailable, HeldBackError
from sqs_consumer.pipeline.batch import Batch
from sqs_consumer.pipeline.dispositions import SUCCEEDED, Listed
from sqs_consumer.pipeline.records import Item, Job


class BreakerStage:
    def __init__(self, board: BreakerBoard) -> None:
        self.board = board

    def gate(self, items: list[Item], batch: Batch) -> None:
        jobs = [item for item in items
                if isinstance(item, Job) and item.disposition is None and item.route.dependency_names]  # fmt: skip
        needed = {name for job in jobs for name in job.route.dependency_names}
        if not needed:
            return
        admission = self.board.admit(self.board.states(needed), _queue_arn(items))
        if not admission.held:
            return
        trials = _trial_records(jobs, admission, batch)
        now, resend = self.board.now(), not batch.order.sequential
        for job in jobs:
            for name in job.route.dependency_names:
                state = admission.held.get(name)
                if state is not None and trials.get(name) is not job:
                    error = BreakerOpenError(name, _held_reason(state))
                    wait = self.board.hold_seconds(state, now)
                    job.disposition = batch.decisions.waiting(job, error, wait, resend=resend, started=False)
                    break

    def settle(self, items: list[Item], batch: Batch) -> None:
        failures: Counter[str] = Counter()
        reasons: dict[str, str] = {}
        successes: set[str] = set()
        unavailable: list[tuple[Job, DependencyUnavailable]] = []
        for item in items:
            if not isinstance(item, Job):
                continue
            if item.disposition is SUCCEEDED:
                successes.update(item.route.dependency_names)
            elif (error := _unavailable(item)) is not None:
                unavailable.append((item, error))
                # Only a dependency the route declares has a breaker its records wait on (and a probe).
                if error.dependency in item.route.dependency_names:
                    failures[error.dependency] += 1
                    reasons.setdefault(error.dependency, error.reason)
        if failures or successes:
            self.board.report({name: (count, reasons[name]) for name, count in failures.items()}, successes,
                              _queue_arn(items))  # fmt: skip
        if unavailable:
            self._after_failures(unavailable, batch, set(failures))

    def _after_failures(self, failed: list[tuple[Job, DependencyUnavailable]], batch: Batch, names: set[str]) -> None:
        """A failed record whose breaker is not closed (open now, or still half-open) waits for the probe, and on
        its last receive is sent again; one whose breaker stays closed (a lone failure) is retried as any failure."""
        states = self.board.states(names) if names else {}
        now, resend = self.board.now(), not batch.order.sequential
        for job, error in failed:
            state = states.get(error.dependency) if error.dependency in job.route.dependency_names else None
            if state is not None and state.mode is not BreakerMode.CLOSED:
                wait = self.board.hold_seconds(state, now)
                job.disposition = batch.decisions.waiting(job, error, wait, resend=resend, started=True)
            elif batch.decisions.last_receive(job):
                job.disposition = batch.decisions.exhausted(job, error, job.event_type)


def _trial_records(jobs: list[Job], admission: Admission, batch: Batch) -> dict[str, Job]:
    """The one record each trial of this batch runs: one no other breaker holds back, preferably one with
    receives to spare (a failed trial sends the others again, one more message to send)."""
    chosen: dict[str, Job] = {}
    for name in sorted(admission.trials):
        free = [job for job in jobs if name in job.route.dependency_names and _runnable(job, admission)]
        spare = [job for job in free if not batch.decisions.resend_due(job)]
        if spare or free:
            chosen[name] = (spare or free)[0]
    return chosen


def _runnable(job: Job, admission: Admission) -> bool:
    """No breaker but a trial's holds the job back."""
    return all(name not in admission.held or name in admission.trials for name in job.route.dependency_names)


def _held_reason(state: BreakerState) -> str:
    if state.mode is BreakerMode.HALF_OPEN:
        return "its circuit breaker is half-open: another record is its trial"
    return f"its circuit breaker is open ({state.reason or 'failures'})"


def _unavailable(item: Job) -> DependencyUnavailable | None:
    """The handler's own DependencyUnavailable (not a record held back, by a breaker or a rate), if that is how it
    failed."""
    disposition = item.disposition
    if isinstance(disposition, Listed):
        error = disposition.error
        if isinstance(error, DependencyUnavailable) and not isinstance(error, HeldBackError):
            return error
    return None


def _queue_arn(items: list[Item]) -> str:
    return str(items[0].raw.get("eventSourceARN", "")) if items else ""
