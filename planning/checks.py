"""Checks that a stage passes at synth and can still fail under load."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from planning.model import (
    BASE_MEMORY_MB,
    INVOCATION_PAYLOAD_LIMIT_BYTES,
    MB,
    PAYLOAD_MEMORY_FACTOR,
    UNRESERVED_MINIMUM,
    memory_needed_mb,
    offloaded,
    record_bytes,
)
from planning.outage import OutagePlan
from planning.planner import Plan, burst
from planning.workload import Z99


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def batch_p99_ms(plan: Plan, records: float) -> float:
    """The 99th percentile of a batch's duration: a sum of records, or waves of them side by side."""
    handler, workload = plan.workload.handler, plan.workload
    waves = math.ceil(records / workload.records_in_parallel)
    if waves <= 1:
        return handler.quantile_ms(0.99 ** (1 / max(1.0, records))) + workload.invocation_overhead_ms
    # The sum of many records is close to normal (central limit theorem).
    return waves * handler.mean_ms + Z99 * math.sqrt(waves) * handler.stdev_ms + workload.invocation_overhead_ms


def run_checks(plan: Plan, *, max_age_seconds: float | None, alarm_age_seconds: int) -> list[Check]:
    """Every check of the plan, in the order the report lists them (the latency one only with a target)."""
    latency = [] if max_age_seconds is None else [window_vs_latency(plan, max_age_seconds)]
    return [
        record_within_timeout(plan),
        batch_within_budget(plan),
        visibility_vs_batch(plan),
        no_throttling(plan),
        keeps_up(plan),
        *latency,
        invocation_payload(plan),
        memory_vs_payload(plan),
        alarm_vs_expected_ages(plan, alarm_age_seconds),
        unreserved_pool(plan),
    ]


def record_within_timeout(plan: Plan) -> Check:
    """A record that outlasts the function's timeout is cut off with its batch, every time it is received."""
    m, handler = plan.mapping, plan.workload.handler
    p99 = handler.quantile_ms(0.99)
    budget = m.time_budget_seconds * 1000
    return Check(
        "one record within the function's timeout",
        p99 <= budget,
        f"a record takes {handler.p50_ms / 1000:.2f} s (p50), {p99 / 1000:.2f} s (p99) vs timeout - reserve = "
        f"{budget / 1000:.1f} s"
        + ("" if p99 <= budget else ": the invocation is cut off, its batch returns and goes to the DLQ unprocessed"),
    )


def batch_within_budget(plan: Plan) -> Check:
    m = plan.mapping
    full = m.batch_size
    p99 = batch_p99_ms(plan, full)
    budget = m.time_budget_seconds * 1000
    return Check(
        "batch p99 within the time budget",
        p99 <= budget,
        f"a full batch of {full} takes {p99 / 1000:.2f} s at p99; records start until timeout - reserve = "
        f"{budget / 1000:.1f} s" + ("" if p99 <= budget else ": the rest are listed and come back, a receive spent"),
    )


def visibility_vs_batch(plan: Plan) -> Check:
    m = plan.mapping
    held = batch_p99_ms(plan, m.batch_size) / 1000 + m.window_seconds
    return Check(
        "visibility timeout vs a batch in flight",
        m.visibility_seconds >= held,
        f"visibility {m.visibility_seconds:.0f} s vs window + batch p99 = {held:.1f} s",
    )


def mapping_demand(plan: Plan) -> float:
    """The most batches the mapping tries to run: the peak rate's, the ramp's, and each burst's, where
    the mapping scales up on the backlog whatever the function's own limit allows."""
    w = plan.workload
    unthrottled = dataclasses.replace(plan.mapping, function_cap=plan.mapping.mapping_cap)
    bursts = (
        burst(unthrottled, w, b.at_seconds, b.messages, w.arrivals.rate_at(b.at_seconds)).peak_readers
        for b in plan.bursts
    )
    return max(plan.peak.readers, plan.ramp.readers_needed, *bursts)


def no_throttling(plan: Plan) -> Check:
    m = plan.mapping
    need = mapping_demand(plan)
    throttled = m.mapping_cap > m.function_cap and need > m.function_cap
    return Check(
        "no throttling pushes messages towards maxReceiveCount",
        not throttled,
        f"the mapping may run {m.mapping_cap} batches, the function {m.function_cap} ({m.function_cap_source}); "
        f"the peak and bursts need {need:.0f}"
        + (
            f": held batches return after {m.visibility_seconds:.0f} s with a receive spent, and after "
            f"{m.max_receive_count} go to the DLQ unprocessed"
            if throttled
            else ""
        ),
    )


def keeps_up(plan: Plan) -> Check:
    return Check(
        "keeps up at the peak rate",
        plan.peak.keeps_up,
        f"{plan.peak.readers:.1f} concurrent batches needed at {plan.peak.rate:g} msg/s, "
        f"{plan.peak.limit} allowed ({plan.peak.limited_by})",
    )


LATENCY_CHECK = "oldest message vs latency target"


def window_vs_latency(plan: Plan, max_age_seconds: float) -> Check:
    """The oldest age anywhere in the plan: the mean rate's (window + batch), the ramp's and each burst's."""
    worst = plan.worst_age_seconds
    bursts = max((b.peak_age_seconds for b in plan.bursts), default=0.0)
    return Check(
        LATENCY_CHECK,
        worst <= max_age_seconds,
        f"oldest message {_age(worst)} (mean rate {_age(plan.steady.oldest_age_seconds)} with window "
        f"{plan.mapping.window_seconds:g} s, ramp {_age(plan.ramp.peak_age_seconds)}, bursts {_age(bursts)}) "
        f"vs --max-age {max_age_seconds:g} s",
    )


def _age(seconds: float) -> str:
    return f"{seconds:,.1f} s" if math.isfinite(seconds) else "no bound"


def invocation_payload(plan: Plan) -> Check:
    m, w = plan.mapping, plan.workload
    full = m.batch_size
    per_record = record_bytes(m.max_message_bytes, w)
    event_bytes = full * per_record
    fits = event_bytes <= INVOCATION_PAYLOAD_LIMIT_BYTES
    body = "an S3 pointer" if offloaded(m.max_message_bytes, w) else f"{w.payload_bytes:,} B"
    return Check(
        "6 MB invocation payload",
        fits,
        f"batch {full} x ({body} + Lambda's record) = {event_bytes / MB:.2f} MB"
        + ("" if fits else f": batches close early at 6 MB, {INVOCATION_PAYLOAD_LIMIT_BYTES // per_record} records"),
    )


def memory_vs_payload(plan: Plan) -> Check:
    m, w = plan.mapping, plan.workload
    memory = memory_needed_mb(m.max_message_bytes, w, m.batch_size)
    fetched = " + the payloads fetched from S3" if offloaded(m.max_message_bytes, w) else ""
    return Check(
        "memory vs payload x batch size",
        memory <= 0.9 * m.memory_mb,
        f"about {memory:,.0f} MB needed ({BASE_MEMORY_MB} MB + {PAYLOAD_MEMORY_FACTOR} x the event{fetched}) "
        f"vs 90% of {m.memory_mb} MB",
    )


def alarm_vs_expected_ages(plan: Plan, alarm_age_seconds: int) -> Check:
    m, w = plan.mapping, plan.workload
    retry_age = sum(m.retry_delay_seconds(n) for n in range(1, m.max_receive_count)) if w.failure_rate else 0.0
    worst = max(plan.worst_age_seconds, retry_age)
    return Check(
        "oldest-message alarm vs expected ages",
        worst < alarm_age_seconds,
        f"expected oldest age {_age(worst)} (ramp {_age(plan.ramp.peak_age_seconds)}, bursts "
        f"{_age(max((b.peak_age_seconds for b in plan.bursts), default=0))}, retries {_age(retry_age)}) vs the "
        f"alarm at {alarm_age_seconds:,} s" + ("" if worst < alarm_age_seconds else ": it pages on planned load"),
    )


def unreserved_pool(plan: Plan) -> Check:
    """Lambda refuses a reservation that leaves fewer than 100 executions of the account unreserved."""
    m = plan.mapping
    reserved = m.reserved_concurrency or 0
    room = m.account_concurrency - UNRESERVED_MINIMUM
    return Check(
        "reserved concurrency leaves 100 unreserved",
        reserved <= room,
        f"reserved {reserved:,} of the account's {m.account_concurrency:,}; at most {max(0, room):,} may be reserved"
        + ("" if reserved <= room else ": Lambda refuses the reservation, lower reserved_concurrency"),
    )


def outage_retention(outage: OutagePlan) -> Check:
    """With the breaker the queue keeps the outage's messages: they must outlive it and the drain."""
    age = outage.with_breaker.peak_age_seconds
    return Check(
        "the queue keeps an outage's messages",
        outage.kept,
        f"oldest message {_age(age)} (outage {outage.seconds:,.0f} s + a probe + the drain) vs the "
        f"queue's retention {outage.retention_seconds:,.0f} s"
        + ("" if outage.kept else ": SQS deletes the oldest unread, raise retention_period_seconds"),
    )
