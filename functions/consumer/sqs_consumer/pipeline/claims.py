"""Stage 2, claim: the batch's events are claimed in the idempotency store together.

The first record of the batch carrying an ``event_id`` leads: its event is claimed. The others
(copies) follow its real outcome once it has one: a duplicate only if it succeeded or was already
processed. Whether an ``event_id`` was reused for another event is judged against the stored event
when the store holds one, otherwise against the leading record, never against a third record.
"""

from __future__ import annotations

from sqs_consumer.budget import Deadline
from sqs_consumer.idempotency.fingerprint import comparable, fingerprint, same_event
from sqs_consumer.idempotency.port import Claim, ClaimState, EventInProgressError, Idempotency
from sqs_consumer.observability import Outcome
from sqs_consumer.pipeline.decisions import Decisions
from sqs_consumer.pipeline.dispositions import DUPLICATE, SUCCEEDED, Disposition, Listed
from sqs_consumer.pipeline.records import Item, Job

_STORED_DIFFERS = "the stored event has another event_type or payload"


def _stored_differs(claim: Claim, job: Job) -> str:
    """Why the stored event is not this one: another type or payload, or a version this body never was at."""
    if claim.stored_version == job.event.event_version:
        return _STORED_DIFFERS
    if comparable(job.event, claim.stored_version):
        return f"{_STORED_DIFFERS} than this body had at event_version {claim.stored_version}, the stored one's"
    return (
        f"the store holds event_version {claim.stored_version}'s fingerprint and this body was never at that "
        f"version (it is at {job.event.event_version}): it cannot be told the same event"
    )


def claim_events(items: list[Item], store: Idempotency, remaining_ms: int, deadline: Deadline) -> None:
    """Set each leading job's claim; mark each copy with its leader."""
    leaders: dict[str, Job] = {}
    for item in items:
        if isinstance(item, Job) and item.disposition is None:  # one the breakers held back is not claimed
            leader = leaders.setdefault(item.event.event_id, item)
            if leader is not item:
                item.leader = leader
    if not leaders:
        return
    try:
        claims = store.claim([job.event for job in leaders.values()], remaining_ms, deadline)
        if len(claims) != len(leaders):
            raise RuntimeError(f"the store answered {len(claims)} claims for {len(leaders)} events")
    except Exception as exc:  # an adapter that raises instead of answering: nothing runs, all retry
        claims = [Claim(ClaimState.UNAVAILABLE, exc)] * len(leaders)
    for job, claim in zip(leaders.values(), claims, strict=True):
        job.claim = claim


def claimed(job: Job, decisions: Decisions) -> Disposition | None:
    """What the job's claim decides before its handler: None when the handler may run."""
    claim = job.claim
    if claim is None or claim.state is ClaimState.ACQUIRED:
        return None
    return _from_claim(job, claim, decisions)


def _from_claim(job: Job, claim: Claim, decisions: Decisions) -> Disposition:
    if claim.state is ClaimState.DUPLICATE:
        return DUPLICATE
    if claim.state is ClaimState.REUSED:
        return decisions.reused(job, job.event, _stored_differs(claim, job))
    return decisions.failure(job, claim.error or RuntimeError("idempotency claim failed"), job.event.event_type)


def follow(copy: Job, decisions: Decisions) -> Disposition:
    """A copy's disposition, from its leader's claim and outcome."""
    leader = copy.leader
    assert leader is not None
    claim = leader.claim
    if claim is not None and claim.state is ClaimState.REUSED and claim.stored_fingerprint and claim.stored:
        # The store holds another event under this id: the copy is judged against that one.
        if same_event(claim.stored_fingerprint, copy.event, claim.stored_version):
            return _from_claim(copy, claim.stored, decisions)
        return decisions.reused(copy, copy.event, _stored_differs(claim, copy))
    if fingerprint(copy.event) != fingerprint(leader.event):
        return decisions.reused(copy, copy.event, f"message {leader.message_id} of this batch carries another one")
    outcome = leader.disposition
    if outcome is SUCCEEDED or outcome is DUPLICATE:
        return DUPLICATE
    if isinstance(outcome, Listed) and outcome.outcome is Outcome.SKIPPED:
        return decisions.not_started(copy, "a copy of it earlier in the batch was not started", copy.event.event_type)
    error = EventInProgressError("a copy of this event in the same batch did not succeed")
    return decisions.failure(copy, error, copy.event.event_type)
