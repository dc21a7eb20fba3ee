"""Suggested settings: the cheapest stage that meets a latency target, and the diff to the stage."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from infra.settings import StackSettings
from planning.checks import LATENCY_CHECK, run_checks
from planning.cost import CostLine, monthly_cost, total
from planning.model import UNRESERVED_MINIMUM, Mapping, memory_needed_mb
from planning.planner import Plan, plan
from planning.prices import PriceSheet
from planning.workload import Workload

BATCH_SIZES = (1, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 10_000)
WINDOWS = (0, 1, 2, 5, 10, 20, 30, 60)
MEMORY_STEPS = (128, 256, 512, 1_024, 1_769, 2_048, 3_008, 4_096, 10_240)
CONCURRENCY_FACTORS = (1.25, 2, 4, 8)
MIN_POLLERS = (2, 5, 10, 20, 50, 100, 200)
# The settings a suggestion may change.
TUNED = (
    "batch_size",
    "max_batching_window_seconds",
    "max_concurrency",
    "provisioned_pollers",
    "reserved_concurrency",
    "function_memory_mb",
    "visibility_timeout_seconds",
    "oldest_message_age_alarm_seconds",
)


@dataclass(frozen=True)
class Suggestion:
    settings: StackSettings
    plan: Plan
    cost: list[CostLine]
    meets: bool  # False: nothing tried meets the target; this one comes closest
    worst_age_seconds: float

    def diff(self, stage: StackSettings) -> list[tuple[str, Any, Any]]:
        before, after = stage.model_dump(), self.settings.model_dump()
        return [(name, before[name], after[name]) for name in TUNED if before[name] != after[name]]

    def better_than(self, other: Suggestion | None) -> bool:
        if other is None:
            return True
        if self.meets != other.meets:
            return self.meets
        if self.meets:
            return total(self.cost) < total(other.cost)
        return (self.worst_age_seconds, total(self.cost)) < (other.worst_age_seconds, total(other.cost))


def _candidate(stage: StackSettings, **changes: Any) -> StackSettings | None:
    values = {**stage.model_dump(exclude_unset=True), **changes}
    if changes.get("provisioned_pollers") is not None:
        values.pop("max_concurrency", None)
    window = values.get("max_batching_window_seconds", 0)
    values["visibility_timeout_seconds"] = max(
        stage.visibility_timeout_seconds, 6 * stage.function_timeout_seconds + window
    )
    try:
        return StackSettings.model_validate(values)
    except ValidationError:
        return None  # a combination AWS refuses (for example a batch over 10 without a window)


def suggest(
    stage: StackSettings, workload: Workload, prices: PriceSheet, *, max_age: float, account_concurrency: int
) -> Suggestion | None:
    """The cheapest stage that meets ``max_age`` (steady, ramp and bursts), standard mode first, then
    provisioned pollers (their price is not in prices.toml, so they are tried only when standard mode
    cannot meet it). When nothing meets it, the stage that comes closest; None if none keeps up."""
    best: Suggestion | None = None
    for size in BATCH_SIZES:
        if stage.fifo and size > 10:
            continue
        for window in WINDOWS if not stage.fifo else (0,):
            base = _candidate(
                stage,
                batch_size=size,
                max_batching_window_seconds=window,
                function_memory_mb=_memory_for(stage, workload, size),
                provisioned_pollers=None,
            )
            if base is None:
                continue
            need = plan(Mapping.of(base, account_concurrency), workload).peak.readers
            # A reservation leaves Lambda's 100 unreserved executions of the account alone.
            top = 1_000 if stage.reserved_concurrency is None else min(1_000, account_concurrency - UNRESERVED_MINIMUM)
            if top < 2:
                continue
            levels = sorted({min(top, max(2, math.ceil(need * factor))) for factor in CONCURRENCY_FACTORS} | {top})
            for concurrency in levels:
                reserved = concurrency if stage.reserved_concurrency is not None else None
                settings = _candidate(base, max_concurrency=concurrency, reserved_concurrency=reserved)
                found = settings and _evaluate(settings, workload, prices, max_age, account_concurrency)
                if found and found.better_than(best):
                    best = found
                if found and found.meets:
                    break
    if best is not None and best.meets:
        return best
    for minimum in MIN_POLLERS:
        settings = _candidate(stage, provisioned_pollers={"minimum": minimum, "maximum": 2_000})
        found = settings and _evaluate(settings, workload, prices, max_age, account_concurrency)
        if found and found.meets:
            return found
        if found and found.better_than(best):
            best = found
    return best


def _memory_for(stage: StackSettings, workload: Workload, size: int) -> int:
    """The smallest memory step at or above the stage's whose check passes for a batch of ``size``."""
    needed = memory_needed_mb(stage.max_message_size_bytes, workload, size) / 0.9
    return next((m for m in MEMORY_STEPS if m >= max(needed, stage.function_memory_mb)), MEMORY_STEPS[-1])


def _evaluate(
    settings: StackSettings, workload: Workload, prices: PriceSheet, max_age: float, account_concurrency: int
) -> Suggestion | None:
    """The candidate with its alarm threshold set above what it plans for; None if it cannot keep up
    or fails a check other than the latency target."""
    p = plan(Mapping.of(settings, account_concurrency), workload)
    if not p.peak.keeps_up:
        return None
    worst = p.worst_age_seconds
    alarm = max(60, math.ceil(1.5 * worst / 60) * 60) if math.isfinite(worst) else 43_200
    tuned = _candidate(settings, oldest_message_age_alarm_seconds=alarm) or settings
    checks = run_checks(p, max_age_seconds=max_age, alarm_age_seconds=alarm)
    if not all(c.ok for c in checks if c.name != LATENCY_CHECK):
        return None
    meets = worst <= max_age and all(c.ok for c in checks)
    return Suggestion(tuned, p, monthly_cost(tuned, p.mapping, workload, p.steady, prices), meets, worst)
