"""How the fault run publishes its mix, and what `make chaos` runs and says.

A late record outlasts the function's timeout unless it starts at the head of its batch, and every
record behind late ones loses a receive to the near-timeout guard: the late records go first, alone.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from local import fault_run
from local.fault_run import FaultReport, Planned, plan_messages, publish_late_first

ROOT = Path(__file__).resolve().parents[2]


def test_fault_run_settles_the_late_records_alone_before_sending_the_rest():
    # GIVEN the seeded mix, late records among the rest
    planned = plan_messages(200, seed=7, slow_ms=2_000, late_ms=6_500)
    events: list[tuple[str, list[str]]] = []

    def send(items: list[Planned]) -> dict[str, Planned]:
        events.append(("send", [item.kind for item in items]))
        return {f"m-{id(item)}": item for item in items}

    def settle(published: dict[str, Planned]) -> None:
        events.append(("settle", [item.kind for item in published.values()]))

    # WHEN it is published
    published = publish_late_first(planned, send, settle)

    # THEN the late records were sent in a request of their own and settled before anything else was sent
    late = [item.kind for item in planned if item.kind == "late"]
    assert late
    assert events[0] == ("send", late)
    assert events[1] == ("settle", late)
    assert events[2][0] == "send" and "late" not in events[2][1]
    assert len(events) == 3
    assert len(published) == len(planned)


def test_fault_run_without_late_records_sends_the_mix_at_once():
    planned = plan_messages(5, seed=7, slow_ms=2_000, late_ms=6_500)
    assert all(item.kind != "late" for item in planned)
    settled: list[Any] = []
    publish_late_first(planned, lambda items: {str(i): item for i, item in enumerate(items)}, settled.append)
    assert settled == []


def test_fault_run_asked_for_no_late_records_plans_the_same_mix_of_every_other_kind():
    # GIVEN the same seed with and without late records
    with_late = plan_messages(120, seed=5, slow_ms=2_000, late_ms=6_500)
    without = plan_messages(120, seed=5, slow_ms=2_000, late_ms=6_500, late=False)

    # THEN the second has none, the same count, and still every other kind of fault
    assert any(item.kind == "late" for item in with_late)
    assert [item for item in without if item.kind == "late"] == []
    assert len(without) == 120
    assert {item.kind for item in without} == set(fault_run.KINDS) - {"late"}


def test_fault_run_says_where_its_logs_are(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    # GIVEN a fault run that found nothing to report
    monkeypatch.setattr(fault_run, "run", lambda *args, **kwargs: FaultReport())
    monkeypatch.setattr(fault_run, "render", lambda report, console: None)

    # WHEN its command ends
    code = fault_run.main(["--template", "t.json", "--messages", "10"])

    # THEN its last line says where the function's and moto's logs are
    assert code == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("Logs: ") and "fault-run" in last and "function-N.log" in last and "moto.log" in last


@pytest.mark.parametrize(("arguments", "messages"), [([], "1000"), (["COUNT=200"], "200")])
def test_make_chaos_runs_count_messages(arguments: list[str], messages: str):
    printed = subprocess.run(["make", "--no-print-directory", "-n", "chaos", *arguments], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
    [command] = [line for line in printed.splitlines() if "local.fault_run" in line]
    assert f"--messages {messages} " in command
