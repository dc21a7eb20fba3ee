"""The simulation's fast-forward (steady stretches skipped, not simulated event by event) against its fine
model: the same figures over tens of simulated minutes, and a whole day at 1,000 msg/s in seconds.

Here rather than with the planner's unit tests: each runs the fine model over 25 to 40 simulated minutes,
seconds of CPU each.
"""

from __future__ import annotations

import pytest

from planning.simulation import Simulation, simulate
from planning.workload import ArrivalProfile, Burst, HandlerTime, Workload
from tests.unit.test_planning_agreement import mapping

# Each long enough for the fast model to skip a steady stretch (it skips whole 300 s stretches once the
# readers have settled); the retries and the poison need 40 minutes for the peak age to settle as well.
FAST_FORWARD = [
    pytest.param(dict(max_concurrency=100), Workload(ArrivalProfile(100), HandlerTime(20, 20)), 1_500, id="100 msg/s"),
    pytest.param(
        dict(max_concurrency=50),
        Workload(ArrivalProfile(50), HandlerTime(20, 100), failure_rate=0.05, poison_rate=0.01),
        2_400,
        id="failures and poison",
    ),
    pytest.param(
        dict(max_concurrency=50, batch_size=100, max_batching_window_seconds=1),
        Workload(ArrivalProfile(50, bursts=(Burst(1_000, 10_000),)), HandlerTime(10, 50)),
        1_500,
        id="window and a burst in the middle",
    ),
]


@pytest.mark.parametrize(("settings", "workload", "horizon"), FAST_FORWARD)
def test_simulation_fast_forward_agrees_with_the_fine_model(settings, workload, horizon):
    # GIVEN the same minutes simulated event by event, and with the steady stretches skipped
    fine = simulate(mapping(**settings), workload, horizon, fast_forward=False)
    skipping = Simulation(mapping(**settings), workload)
    fast = skipping.run(horizon)
    assert skipping.queue.offset >= 300, "a steady stretch was skipped, not simulated"

    # THEN every message is accounted for, and the figures agree: the invocations (and the billed time)
    # of a stretch vary by several percent with the readers' phase, whichever model counts them
    assert fast.settled == fine.settled
    assert fast.quarantined == pytest.approx(fine.quarantined, rel=0.15, abs=20)
    assert fast.invocations == pytest.approx(fine.invocations, rel=0.15)
    assert fast.billed_ms == pytest.approx(fine.billed_ms, rel=0.15)
    assert fast.peak_age == pytest.approx(fine.peak_age, rel=0.15)  # as far as another seed's
    assert fast.drained_at == pytest.approx(fine.drained_at, rel=0.02)
    assert fast.mean_concurrency(horizon / 2) == pytest.approx(fine.mean_concurrency(horizon / 2), rel=0.05)
    shown = min(len(fast.samples), len(fine.samples))  # one a second, in real time, while either drains
    assert [s.t for s in fast.samples[:shown]] == pytest.approx([s.t for s in fine.samples[:shown]])


def test_simulation_fast_forward_skips_most_of_a_steady_day():
    # GIVEN a day at 1,000 msg/s on a stage that keeps up
    sim = Simulation(mapping(max_concurrency=100), Workload(ArrivalProfile(1_000), HandlerTime(20, 20)))

    # WHEN run
    result = sim.run(86_400)

    # THEN every message is settled, and the simulated clock ran a small part of the day event by event
    assert result.succeeded == 86_400_000
    assert sim.queue.offset > 0.9 * 86_400
    assert result.drained_at == pytest.approx(86_400, abs=5)
