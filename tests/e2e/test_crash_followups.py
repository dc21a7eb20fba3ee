"""Follow-up events across crashes: a process SIGKILLed at each point of their way loses none and sends none
under two ids (docs/design.md §4, "Follow-up events")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.crash import CrashRig, followup_trial
from tests.support.crash_child import KILL_POINTS

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def rig(local_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CrashRig]:
    rig = CrashRig(local_template, tmp_path_factory.mktemp("crash-followups"), followups=True)
    try:
        yield rig
    finally:
        rig.stop()


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_kill_at_any_point_of_the_followups_way_loses_none_and_gives_none_two_ids(rig: CrashRig, point: str):
    # GIVEN a batch of 10 events whose handler emits one follow-up to each of two queues, the process
    # SIGKILLed at `point`, and the batch delivered again once the killed invocation's claims expired
    trial = followup_trial(rig, point, seed=KILL_POINTS.index(point) + 1)

    # THEN the kill happened where it was asked
    assert trial.killed
    # AND every follow-up reached its queue, each under one id only (a repeated send is a duplicate downstream)
    assert trial.lost == []
    assert trial.with_two_ids == []
    # AND every event's handler ran; past the commit, the redelivery found completions stored (duplicates),
    # and sent what they held
    assert all(trial.effects[parent] >= 1 for parent, _ in trial.received)
    assert (trial.duplicates > 0) == (point != "before_commit")
