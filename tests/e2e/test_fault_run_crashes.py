"""A smaller fault run than `make chaos` with crashes: two invocations SIGKILLed mid-batch, same accounting.

A file of its own: make test hands the e2e tests to its workers a file at a time, longest first."""

from __future__ import annotations

from pathlib import Path

import pytest

from local import demo
from local.fault_run import KINDS, run

pytestmark = pytest.mark.e2e


def test_fault_run_with_crashes_still_accounts_for_every_message_and_effect(local_template: Path, tmp_path: Path):
    # GIVEN the fault mix but the late records, with two invocations whose runtime is SIGKILLed mid-batch (the
    # crashes start once the late records have settled, so they add nothing here but their phase's minutes;
    # the run of test_fault_run.py has them)
    report = run(local_template, count=120, seed=5, timeout=300, log_dir=tmp_path, crashes=2, late_records=False)

    # THEN the crashes happened, their batches came back, and nothing was lost or ran twice but an
    # effect whose handler returned within a crash's last store round trips
    assert len(report.kills) == 2
    assert report.function_errors == 2
    assert report.crashed
    assert report.problems == []
    assert demo.IN_FLIGHT not in report.states.values()
    assert {item.kind for item in report.published.values()} == set(KINDS) - {"late"}
    assert all(report.effects[event_id] <= 2 for event_id in report.repeated_by_crash)
