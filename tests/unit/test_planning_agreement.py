"""The planner's closed-form answers against the seeded simulation of the mapping and the function.

Tolerances: 25% on a burst's drain time and peak age (the planner treats readers as a fluid; the
simulation takes whole batches, so the last round of batches can run up to one batch late), 10% on
the steady concurrency (Little's law holds for any batch shape), 30% on the batch size at light load.
"""

from __future__ import annotations

import pytest

from infra.settings import ProvisionedPollers, StackSettings
from planning.model import Mapping
from planning.planner import plan
from planning.simulation import simulate
from planning.workload import ArrivalProfile, Burst, HandlerTime, Workload

BURST_TOLERANCE = 0.25
CONCURRENCY_TOLERANCE = 0.10
BATCH_TOLERANCE = 0.30


def mapping(**settings) -> Mapping:
    return Mapping.of(StackSettings.model_validate(settings))


def within(planned: float, simulated: float, tolerance: float) -> bool:
    return abs(simulated - planned) <= tolerance * planned


BURSTS = [
    pytest.param(dict(max_concurrency=3, batch_size=10), HandlerTime(20, 20), 5_000, id="3 readers, batch 10, 20 ms"),
    pytest.param(
        dict(max_concurrency=3, batch_size=100, max_batching_window_seconds=1),
        HandlerTime(120, 900),
        5_000,
        id="3 readers, batch 100 + window, 120/900 ms",
    ),
    pytest.param(dict(max_concurrency=20, batch_size=1), HandlerTime(120, 900), 3_000, id="20 readers, batch 1"),
    pytest.param(dict(max_concurrency=20, batch_size=10), HandlerTime(20, 20), 20_000, id="20 readers, batch 10"),
    pytest.param(
        dict(max_concurrency=200, batch_size=10), HandlerTime(120, 900), 5_000, id="scale-up to 200, 120/900 ms"
    ),
    pytest.param(dict(max_concurrency=1_000, batch_size=10), HandlerTime(20, 20), 40_000, id="scale-up, 20 ms"),
    pytest.param(
        dict(provisioned_pollers={"minimum": 2, "maximum": 50}, batch_size=10),
        HandlerTime(120, 900),
        10_000,
        id="provisioned 2-50 pollers",
    ),
    pytest.param(
        dict(max_concurrency=200, batch_size=100, max_batching_window_seconds=1),
        HandlerTime(20, 20),
        50_000,
        id="scale-up, batch 100 + window",
    ),
]


@pytest.mark.parametrize(("settings", "handler", "messages"), BURSTS)
def test_planner_burst_drain_and_peak_age_agree_with_simulation(settings, handler, messages):
    # GIVEN a stage and a burst sent at once into an idle queue
    m = mapping(**settings)
    workload = Workload(ArrivalProfile(0, bursts=(Burst(0, messages),)), handler)

    # WHEN the planner and the simulation answer
    planned = plan(m, workload).bursts[0]
    simulated = simulate(m, workload, horizon=1, seed=7)

    # THEN the drain time and the oldest message's peak age agree within the tolerance
    assert simulated.settled == messages
    assert within(planned.seconds_to_drain, simulated.drained_at, BURST_TOLERANCE), (planned, simulated.drained_at)
    assert within(planned.peak_age_seconds, simulated.peak_age, BURST_TOLERANCE), (planned, simulated.peak_age)


STEADY = [
    pytest.param(dict(max_concurrency=1_000), 50, HandlerTime(120, 900), id="standard, 50/s"),
    pytest.param(dict(max_concurrency=1_000), 300, HandlerTime(120, 900), id="standard, 300/s"),
    pytest.param(
        dict(max_concurrency=1_000, batch_size=100, max_batching_window_seconds=2),
        300,
        HandlerTime(20, 60),
        id="standard, batch 100 + window, 300/s",
    ),
    pytest.param(
        dict(provisioned_pollers={"minimum": 2, "maximum": 100}), 300, HandlerTime(120, 900), id="provisioned, 300/s"
    ),
]


@pytest.mark.parametrize(("settings", "rate", "handler"), STEADY)
def test_planner_steady_concurrency_agrees_with_simulation(settings, rate, handler):
    # GIVEN a steady rate from idle for two minutes
    m = mapping(**settings)
    workload = Workload(ArrivalProfile(rate), handler)

    # WHEN both answer
    planned = plan(m, workload)
    simulated = simulate(m, workload, horizon=120, seed=3)

    # THEN the concurrent executions of the second minute follow Little's law, and nothing is lost
    assert within(planned.steady.concurrency, simulated.mean_concurrency(since=60), CONCURRENCY_TOLERANCE)
    assert simulated.settled == rate * 120


@pytest.mark.parametrize("rate", [5, 40])
def test_planner_light_load_batch_size_with_a_window_agrees_with_simulation(rate):
    # GIVEN a batching window at a rate the idle readers take without scaling up
    m = mapping(max_concurrency=100, batch_size=100, max_batching_window_seconds=2)
    workload = Workload(ArrivalProfile(rate), HandlerTime(20, 60))

    # WHEN both answer
    planned = plan(m, workload).steady.records_per_batch
    simulated = simulate(m, workload, horizon=120, seed=5)

    # THEN the readers split the arrivals between their windows alike
    assert within(planned, simulated.records_invoked / simulated.invocations, BATCH_TOLERANCE)


def test_planner_burst_with_retries_drains_after_the_backoffs_like_simulation():
    # GIVEN a fifth of the receives failing, retried after 10, 20, 40 and 80 s, 5 receives at most
    m = mapping(max_concurrency=50, batch_size=10)
    workload = Workload(ArrivalProfile(0, bursts=(Burst(0, 5_000),)), HandlerTime(20, 60), failure_rate=0.2)

    # WHEN both answer
    planned = plan(m, workload).bursts[0]
    simulated = simulate(m, workload, horizon=1, seed=11)

    # THEN the drain waits for the last retries, and the messages failing every receive are quarantined
    assert within(planned.seconds_to_drain, simulated.drained_at, BURST_TOLERANCE)
    assert simulated.quarantined == pytest.approx(5_000 * 0.2**5, abs=12)
    assert simulated.settled == 5_000


def test_simulation_throttled_batches_return_and_reach_the_dlq_without_a_reason():
    # GIVEN a mapping that may run far more batches than the function's reserved concurrency (a stage the
    # synth refuses today, as one deployed before that rule may still be)
    valid = StackSettings.model_validate({"batch_size": 10, "visibility_timeout_seconds": 180, "max_retries": 1})
    m = Mapping.of(StackSettings.model_construct(
        **{**dict(valid), "provisioned_pollers": ProvisionedPollers(minimum=2, maximum=4), "reserved_concurrency": 2}
    ))  # fmt: skip
    workload = Workload(ArrivalProfile(0, bursts=(Burst(0, 500),)), HandlerTime(2_000, 2_000))

    # WHEN the simulation runs it
    simulated = simulate(m, workload, horizon=1)

    # THEN held batches outlive their visibility timeout and SQS's redrive takes some unprocessed
    assert simulated.throttled_invokes > 0
    assert simulated.redriven > 0
    assert simulated.settled == 500


def test_simulation_is_reproducible_for_a_seed():
    m = mapping(max_concurrency=20)
    workload = Workload(ArrivalProfile(50, bursts=(Burst(10, 1_000),)), HandlerTime(50, 400))
    first, second = simulate(m, workload, 30, seed=4), simulate(m, workload, 30, seed=4)
    assert first.samples == second.samples
    assert simulate(m, workload, 30, seed=5).samples != first.samples


def test_fifo_message_groups_bound_the_concurrency_in_planner_and_simulation():
    # GIVEN a FIFO queue whose messages fall in 4 groups, on a mapping allowing 50 batches
    m = mapping(fifo=True, max_concurrency=50, batch_size=10)
    workload = Workload(ArrivalProfile(0, bursts=(Burst(0, 4_000),)), HandlerTime(50, 50), message_groups=4)

    # WHEN both answer
    planned = plan(m, workload).bursts[0]
    simulated = simulate(m, workload, horizon=1)

    # THEN at most 4 batches run at once, and the drain agrees
    assert planned.peak_readers <= 4 and simulated.peak_readers <= 4
    assert within(planned.seconds_to_drain, simulated.drained_at, BURST_TOLERANCE)
