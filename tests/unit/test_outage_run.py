"""The outage run's accounting, from the calls the stand-in recorded and the DLQ; its arguments."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from rich.console import Console

from local.orders_api import OrderCall
from local.outage_run import OutagePlan, OutageReport, main, order_event, render

ROOT = Path(__file__).resolve().parents[2]
PLAN = OutagePlan(outage=120, before=20, after=20, rate=2)


def call(key: str, status: int | None, *, at: float = 0.0, down: bool = False, method: str = "POST") -> OrderCall:
    return OrderCall(at, method, "/orders", key, status, down)


def report(**fields) -> OutageReport:
    base = OutageReport(PLAN, breakers=True, started=1000.0, published={"a": 1001.0, "b": 1002.0, "c": 1003.0})
    for name, value in fields.items():
        setattr(base, name, value)
    return base


def test_the_plan_publishes_at_its_rate_across_the_whole_run():
    assert PLAN.count == 320
    assert OutagePlan(outage=0.1, before=0.1, after=0.1, rate=1).count == 1


def test_effects_are_accepted_orders_only():
    # failed calls (reset, 503), health checks and other events' calls are no effect
    calls = [
        call("a", None, down=True), call("a", 503, down=True), call("a", 201), call("b", 200, method="GET"),
        call("b", 201), call("c", 201), call("zzz", 201),
    ]  # fmt: skip
    done = report(calls=calls, drained_at=1200.0, outage=(1020.0, 1140.0))
    assert done.effects == {"a": 1, "b": 1, "c": 1, "zzz": 1}
    assert done.repeated == []
    assert done.lost == []
    assert len(done.calls_while_down) == 2
    assert done.drain_seconds == 60.0
    assert done.problems() == []


def test_an_order_accepted_twice_a_lost_event_and_the_dlq_with_breakers_on_are_problems():
    done = report(calls=[call("a", 201), call("a", 201)], dead={"b": "retries_exhausted"}, drained_at=None)
    assert done.repeated == ["a"]
    assert done.lost == ["c"]
    problems = done.problems()
    assert any("more than once" in problem and "'a'" in problem for problem in problems)
    assert any("neither had their effect nor reached the DLQ" in problem and "'c'" in problem for problem in problems)
    assert any("not drained" in problem for problem in problems)
    assert any("1 message(s) in the DLQ with the breakers on" in problem for problem in problems)


def test_with_breakers_off_the_dlq_filling_is_the_expected_outcome_not_a_problem():
    done = report(calls=[call("a", 201), call("c", 201)], dead={"b": "retries_exhausted"}, drained_at=1300.0)
    done.breakers = False
    assert done.problems() == []


def test_render_with_breakers_off_says_the_messages_the_outage_spent_not_that_none_were():
    done = report(calls=[call("a", 201), call("c", 201)], dead={"b": "retries_exhausted"}, drained_at=1300.0)
    done.breakers = False
    console = Console(record=True, width=200)
    render(done, console)
    printed = console.export_text()
    assert "1 message(s) spent on the outage (in the DLQ), as expected with the breakers off" in printed
    assert "No message spent" not in printed


def test_render_with_breakers_on_and_an_empty_dlq_says_no_message_was_spent():
    done = report(calls=[call("a", 201), call("b", 201), call("c", 201)], drained_at=1300.0)
    console = Console(record=True, width=200)
    render(done, console)
    assert "No message spent on the outage." in console.export_text()


def test_order_event_is_a_new_order_of_the_sample():
    event = order_event("evt_x", 7)
    assert (event["event_id"], event["event_type"], event["payload"]["order_id"]) == (
        "evt_x",
        "order.placed",
        "ord-outage-7",
    )
    assert event["payload"]["lines"]


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--outage", "120"],
        ["--template", "t.json", "--outage", "0"],
        ["--template", "t.json", "--outage", "nan"],
        ["--template", "t.json", "--outage", "inf"],
        ["--template", "t.json", "--outage", "-5"],
        ["--template", "t.json", "--outage", "10", "--breaker", "maybe"],
        ["--template", "t.json", "--outage", "10", "--outage-mode", "slow"],
        ["--template", "t.json", "--outage", "10", "--set", "NOVALUE"],
    ],
)
def test_a_bad_argument_prints_usage_and_exits_2(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "usage: python -m local.outage_run" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [(["OUTAGE=120"], "--outage 120 --breaker on"), (["OUTAGE=30", "BREAKER=off"], "--outage 30 --breaker off")],
)
def test_make_chaos_with_an_outage_runs_the_outage_run_instead_of_the_fault_run(arguments, expected):
    printed = subprocess.run(["make", "--no-print-directory", "-n", "chaos", *arguments], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "local.fault_run" not in printed
    [command] = [line for line in printed.splitlines() if "local.outage_run" in line]
    assert command.endswith(expected)


def test_render_names_the_messages_sqs_moved_to_the_dlq_without_a_quarantine():
    done = report(calls=[call("a", 201), call("c", 201)], dead={"b": "no reason"}, drained_at=1300.0,
                  outage=(1020.0, 1140.0))  # fmt: skip
    console = Console(record=True, width=200)
    render(done, console)
    printed = console.export_text()
    assert "messages in the DLQ                        1 {'no reason': 1}" in printed
    assert "moved to the DLQ by SQS (maxReceiveCount receives spent, no quarantine): ['b']" in printed
    assert "time to drain after it came back           160 s (target 60 s: missed)" in printed
    assert "1 message(s) in the DLQ with the breakers on" in printed
