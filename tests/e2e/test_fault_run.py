"""A smaller fault run than `make chaos`, same mix and same accounting."""

from __future__ import annotations

from pathlib import Path

import pytest

from local import demo
from local.fault_run import EXPECTED, KINDS, run

pytestmark = pytest.mark.e2e


def test_fault_run_accounts_for_every_message_and_effect(local_template: Path, tmp_path: Path):
    # GIVEN a seeded mix of every fault through the local pipeline
    report = run(local_template, count=150, seed=11, timeout=240, log_dir=tmp_path)

    # THEN every message reached its expected state, every effect happened once, no batch timed out
    assert report.problems == []
    kinds = {item.kind for item in report.published.values()}
    assert kinds == set(KINDS), "the seed must draw every kind of fault"
    assert demo.IN_FLIGHT not in report.states.values()
    assert {report.states[mid] for mid, item in report.published.items() if item.kind == "failing"} == {
        EXPECTED["failing"]
    }
    assert all(letter.reason for letter in report.dead.values()), "every DLQ message says why it is there"
    assert report.function_errors == 0
    assert max(report.effects.values()) == 1
