"""The planner's outage, rate-limit and poller-throughput answers, and the independent check's findings."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest

from infra.settings import ProvisionedPollers, StackSettings
from planning.checks import run_checks
from planning.cli import run
from planning.model import UNRESERVED_MINIMUM, Mapping
from planning.outage import outage
from planning.planner import plan
from planning.prices import price_sheet
from planning.simulation import simulate
from planning.suggest import suggest
from planning.workload import ArrivalProfile, Burst, HandlerTime, Workload

ROOT = Path(__file__).resolve().parents[2]


def stage(**settings) -> StackSettings:
    return StackSettings.model_validate(settings)


def checks_of(mapping: Mapping, workload: Workload, max_age: float | None = None) -> dict[str, bool]:
    return {c.name: c.ok for c in run_checks(plan(mapping, workload), max_age_seconds=max_age,
                                             alarm_age_seconds=43_200)}  # fmt: skip


def test_outage_without_breaker_dead_letters_what_arrives_before_the_last_retry_span():
    # GIVEN the default retries (5 receives; backoff 10, 20, 40, 80 s, equal jitter: 75-150 s in all)
    mapping = Mapping.of(stage(max_concurrency=20))
    workload = Workload(ArrivalProfile(50), HandlerTime(20, 20))

    # WHEN the downstream is down 10 minutes
    o = outage(mapping, workload, 600, probe_every=60)

    # THEN without the breaker every message whose 5 receives fit in the outage goes to the DLQ
    assert o.retry_span_seconds == (75, 150)
    assert o.without_breaker.dead_lettered_range == (50 * (600 - 150), 50 * (600 - 75))
    assert o.without_breaker.dead_lettered == 50 * (600 - 112.5)
    # and the downstream is called on every receive
    assert o.without_breaker.calls_while_down > 4 * o.sent
    # WITH the breaker nothing reaches the DLQ, the queue holds the outage, only probes reach the downstream
    assert o.with_breaker.dead_lettered == 0
    assert o.with_breaker.backlog_at_end == o.sent == 30_000
    assert o.with_breaker.calls_while_down == 10
    assert o.with_breaker.drain_seconds > 60  # the probe, then the backlog


def test_outage_shorter_than_the_retries_loses_nothing_even_without_breaker():
    o = outage(Mapping.of(stage()), Workload(ArrivalProfile(10), HandlerTime(20, 20)), 60, probe_every=60)
    assert o.without_breaker.dead_lettered == 0
    assert o.without_breaker.dead_lettered_range == (0, 0)


def test_outage_drain_is_bound_by_the_rate_limit():
    # GIVEN 50 msg/s and a downstream that takes 60 calls a second
    mapping = Mapping.of(stage(max_concurrency=100))
    limited = Workload(ArrivalProfile(50), HandlerTime(20, 20), rate_limit_per_second=60)
    free = Workload(ArrivalProfile(50), HandlerTime(20, 20))

    # WHEN 10 minutes of backlog (and a probe's wait) drain after the outage
    drain = outage(mapping, limited, 600, probe_every=60).with_breaker.drain_seconds

    # THEN 33,000 messages drain at 60 - 50 = 10 a second: about 3,300 s, far longer than unlimited
    assert drain == pytest.approx(60 + 33_000 / 10, rel=0.05)
    assert outage(mapping, free, 600, probe_every=60).with_breaker.drain_seconds < drain / 5


def test_outage_past_the_queue_retention_fails_its_check(tmp_path, capsys):
    code = run(["--stage-file", str(_stage_file(tmp_path, retention_period_seconds=3_600)), "--rate", "5",
                "--handler-ms", "10", "--outage", "1h", "--json"])  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    [kept] = [c for c in result["checks"] if c["name"] == "the queue keeps an outage's messages"]
    assert kept["ok"] is False
    assert code == 1


def _stage_file(directory: Path, **settings) -> Path:
    path = directory / "planned.json"
    path.write_text(json.dumps(settings))
    return path


def test_cli_outage_table_and_json(capsys):
    assert run(["--stage", "dev", "--rate", "2", "--handler-ms", "20", "--outage", "10m"]) == 0
    out = capsys.readouterr().out
    assert "Outage of 10.0 min" in out and "messages moved to the DLQ" in out and "with the breaker" in out
    run(["--stage", "dev", "--rate", "2", "--handler-ms", "20", "--outage", "10m", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert result["outage"]["with_breaker"]["dead_lettered"] == 0
    assert result["outage"]["without_breaker"]["dead_lettered"] > 0


@pytest.mark.parametrize(("settings", "flags", "expected"), [
    pytest.param({}, [], 30, id="the-default-cap"),
    pytest.param({"breaker_cool_down_seconds": 20, "breaker_cool_down_cap_seconds": 120}, [], 120, id="the-stage-cap"),
    pytest.param({}, ["--probe-every", "45s"], 45, id="given"),
])  # fmt: skip
def test_the_probe_interval_is_the_stages_cool_down_cap_unless_given(tmp_path, capsys, settings, flags, expected):
    run(["--stage-file", str(_stage_file(tmp_path, **settings)), "--rate", "5", "--handler-ms", "10",
         "--outage", "10m", "--json", *flags])  # fmt: skip

    outage_plan = json.loads(capsys.readouterr().out)["outage"]
    assert outage_plan["probe_every_seconds"] == expected
    assert outage_plan["with_breaker"]["calls_while_down"] == math.ceil(600 / expected)


def test_rate_limit_bounds_the_throughput_in_planner_and_simulation():
    # GIVEN 20 readers that could take far more, a downstream limited to 20 calls a second, a burst
    mapping = Mapping.of(stage(max_concurrency=20))
    workload = Workload(ArrivalProfile(5, bursts=(Burst(0, 3_000),)), HandlerTime(20, 20), rate_limit_per_second=20)

    # WHEN planned and simulated (arrivals for 60 s, then the drain)
    p = plan(mapping, workload)
    simulated = simulate(mapping, workload, 60)

    # THEN both drain at 20 a second: the planner's 3,000 / (20 - 5) s, the simulation's 3,300 / 20 s
    assert p.bursts[0].seconds_to_drain == pytest.approx(3_000 / 15, rel=0.05)
    assert simulated.drained_at == pytest.approx(3_300 / 20, rel=0.05)
    assert p.steady.limited_by == "rate limit 20/s"
    assert not plan(mapping, Workload(ArrivalProfile(25), HandlerTime(20, 20), rate_limit_per_second=20)).peak.keeps_up


def test_provisioned_pollers_read_at_most_1_mb_a_second_each():
    # GIVEN 400 msg/s of 256 KiB messages: 105 MB a second
    workload = Workload(ArrivalProfile(400), HandlerTime(20, 20), payload_bytes=256 * 1024)
    ten = Mapping.of(stage(provisioned_pollers={"minimum": 2, "maximum": 10}))
    enough = Mapping.of(stage(provisioned_pollers={"minimum": 2, "maximum": 110}))

    # THEN 10 pollers (100 invokes, but 10 MB/s) cannot keep up; about 105 are needed; 110 keep up
    assert plan(ten, workload).peak.pollers_needed == pytest.approx(104.9, abs=0.1)
    assert not plan(ten, workload).peak.keeps_up
    assert plan(ten, workload).peak.limited_by == "10 pollers x 1 MB/s"
    assert plan(enough, workload).peak.keeps_up


def test_no_throttling_check_sees_a_burst_past_the_account_limit():
    # GIVEN an unreserved function in an account of 100, a mapping allowed 300, a light steady rate
    mapping = Mapping.of(stage(max_concurrency=300), account_concurrency=100)
    light = Workload(ArrivalProfile(5), HandlerTime(100, 100))
    assert checks_of(mapping, light)["no throttling pushes messages towards maxReceiveCount"]

    # WHEN a burst of a million arrives: THEN the mapping scales past the account's pool, the check fails
    bursty = Workload(ArrivalProfile(5, bursts=(Burst(60, 1_000_000),)), HandlerTime(100, 100))
    assert not checks_of(mapping, bursty)["no throttling pushes messages towards maxReceiveCount"]


def test_latency_check_fails_on_a_burst_older_than_the_target():
    # GIVEN a stage that drains a burst of 200,000 in about 16 minutes
    mapping = Mapping.of(stage(max_concurrency=5))
    workload = Workload(ArrivalProfile(1, bursts=(Burst(0, 200_000),)), HandlerTime(20, 20))
    assert plan(mapping, workload).bursts[0].peak_age_seconds > 15 * 60

    # THEN the latency target of 5 minutes fails, though the mean rate's age is far below it
    assert plan(mapping, workload).steady.oldest_age_seconds < 1
    assert checks_of(mapping, workload, max_age=300)["oldest message vs latency target"] is False


def test_a_stage_that_never_keeps_up_has_no_bound_on_its_oldest_age(capsys):
    mapping = Mapping.of(stage(max_concurrency=2))
    p = plan(mapping, Workload(ArrivalProfile(1_000), HandlerTime(100, 100)))
    assert not p.peak.keeps_up
    assert math.isinf(p.steady.oldest_age_seconds)
    assert run(["--stage", "dev", "--rate", "1000", "--handler-ms", "100", "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["steady"]["oldest_age_seconds"] is None  # JSON has no infinity: null, no bound


def test_a_handler_longer_than_the_timeout_is_a_failed_check():
    mapping = Mapping.of(stage(function_timeout_seconds=30))
    checks = checks_of(mapping, Workload(ArrivalProfile(1), HandlerTime(40_000, 40_000)))
    assert checks["one record within the function's timeout"] is False
    assert checks_of(mapping, Workload(ArrivalProfile(1), HandlerTime(100, 100)))[
        "one record within the function's timeout"
    ]


def test_suggested_reserved_concurrency_leaves_100_unreserved():
    # GIVEN a reserved stage, an account of 300, and a load that needs 170 of it (1.25 x 170 > 200)
    base = stage(max_concurrency=10, reserved_concurrency=10)
    workload = Workload(ArrivalProfile(170), HandlerTime(1_000, 1_000))

    # WHEN settings are suggested
    found = suggest(base, workload, price_sheet(), max_age=600, account_concurrency=300)

    # THEN the reservation leaves Lambda's 100 unreserved
    assert found is not None and found.settings.reserved_concurrency is not None
    assert found.settings.reserved_concurrency <= 300 - UNRESERVED_MINIMUM
    over = Mapping.of(stage(max_concurrency=10, reserved_concurrency=950), account_concurrency=1_000)
    assert not checks_of(over, Workload(ArrivalProfile(1), HandlerTime(10, 10)))[
        "reserved concurrency leaves 100 unreserved"
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rate", "nan", "--handler-ms", "1"], "is not a finite number"),
        (["--rate", "inf", "--handler-ms", "1"], "is not a finite number"),
        (["--rate", "1", "--handler-ms", "nan"], "is not a finite number"),
        (["--rate", "1", "--handler-ms", "1", "--account-concurrency", "-5"], "must be >= 1"),
        (["--rate", "1", "--handler-ms", "1", "--rate-limit", "0"], "must be > 0"),
        (["--rate", "1", "--handler-ms", "1", "--outage", "soon"], "is not a duration"),
        (["--rate", "1", "--handler-ms", "1", "--receive-ms", "0", "--simulate"], "receive round trip must be >="),
    ],
)
def test_cli_refuses_numbers_no_plan_can_use(argv, message, capsys):
    code: object
    try:
        code = run(argv)
    except SystemExit as exit_:
        code = exit_.code
    assert code == 2
    assert message in capsys.readouterr().err


def test_the_fastest_receive_accepted_still_simulates_to_the_end():
    # GIVEN the shortest receive round trip accepted (1 ms): the simulation ends and settles everything
    workload = Workload(ArrivalProfile(5), HandlerTime(10, 10), receive_ms=1)
    result = simulate(Mapping.of(stage()), workload, 30)
    assert result.settled == 150
    assert result.drained_at == pytest.approx(30, abs=1)


def test_make_plan_without_rate_prints_usage_and_with_fail_rows_exits_non_zero():
    def make(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["make", "--silent", "--no-print-directory", "plan", *args], cwd=ROOT,
                              capture_output=True, text=True, check=False, timeout=120)  # fmt: skip

    missing = make("STAGE=dev")
    assert missing.returncode == 2
    assert "usage: make plan" in missing.stderr
    failing = make("STAGE=prod", "RATE=400", "HANDLER_MS=120", "ARGS=--json")
    assert failing.returncode != 0
    assert any(not c["ok"] for c in json.loads(failing.stdout)["checks"])
    passing = make("STAGE=dev", "RATE=1", "HANDLER_MS=5", "ARGS=--json")
    assert passing.returncode == 0, passing.stderr


def test_json_drain_time_is_a_number_when_the_drain_ends_inside_the_simulated_period(capsys):
    # GIVEN only a burst at 0, simulated for 10 minutes: it drains in seconds
    assert run(["--stage", "dev", "--rate", "0", "--burst", "300", "--handler-ms", "10", "--simulate",
                "--horizon", "10m", "--json"]) == 0  # fmt: skip
    drained = json.loads(capsys.readouterr().out)["simulation"]["drained_at_seconds"]
    assert drained is not None and 0 < drained < 60


def test_provisioned_pollers_settings_model_the_stage_rule():
    # The stage refuses a reservation below 10 invokes a poller; the planner's pollers use the same 10.
    pollers = ProvisionedPollers(minimum=2, maximum=5)
    assert pollers.max_invocations == 50
    assert Mapping.of(stage(provisioned_pollers={"minimum": 2, "maximum": 5})).mapping_cap == 50
