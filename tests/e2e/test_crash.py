"""A crash mid-batch repeats at most the effects of the last store round trips (docs/design.md §4)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.crash import CrashRig

pytestmark = pytest.mark.e2e

# Kill points spread over the batch: before the claims answer, among the fast handlers' returns,
# among the slow ones', and after the last handler returned.
KILL_POINTS = [0.05, 0.2, 0.35, 0.5, 0.7, 1.0]


@pytest.fixture(scope="module")
def rig(local_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CrashRig]:
    # SNS-wrapped, EventBridge and offloaded events among the events alone (every fourth of each)
    rig = CrashRig(local_template, tmp_path_factory.mktemp("crash"), shapes=True)
    try:
        yield rig
    finally:
        rig.stop()


def test_an_effect_that_returned_before_the_last_round_trips_never_runs_again_after_a_kill(rig: CrashRig):
    # GIVEN batches of fast and slow handlers, each process SIGKILLed at another point of its batch
    sweep = rig.sweep("group", KILL_POINTS, rig.round_trip_s())

    # THEN after the redelivery every event ran, and none that returned more than two store round
    # trips before the kill ran twice
    assert [trial.never_ran for trial in sweep.trials] == [[] for _ in sweep.trials]
    assert {t.kill_after_s: t.ran_twice(sweep.window_s(t)) for t in sweep.trials} == {t: [] for t in KILL_POINTS}
    # AND the sweep did kill batches with effects already done (it tests something): as many as kill points, though a
    # busy trial's window is longer (on a busy machine the kill at 0.5 s may find none outside its 0.2 s)
    checked = {t.kill_after_s: t.returned_outside(sweep.window_s(t)) for t in sweep.trials}
    windows = {t.kill_after_s: round(sweep.window_s(t), 3) for t in sweep.trials}
    assert sweep.effects_before_kill() >= len(KILL_POINTS), f"checked by kill point: {checked}; windows: {windows}"


def test_batch_end_settlement_runs_finished_effects_again_after_a_kill(rig: CrashRig):
    # GIVEN the same consumer writing its completions only when the batch is done
    sweep = rig.sweep("batch_end", [0.6], rig.round_trip_s())

    # THEN effects that had long returned ran twice: what group commit prevents
    assert sweep.ran_twice() > 0
