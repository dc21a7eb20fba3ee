"""The planner's cost lines, checks, suggestions and command line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from infra.settings import ProvisionedPollers, StackSettings
from planning.checks import run_checks
from planning.cli import run
from planning.cost import monthly_cost
from planning.model import Mapping
from planning.planner import plan
from planning.prices import PRICES_FILE, UnpricedRegionError, price_sheet
from planning.suggest import suggest
from planning.workload import ArrivalProfile, Burst, HandlerTime, Workload, WorkloadError

ROOT = Path(__file__).resolve().parents[2]
COST_DOCUMENT = ROOT / "docs" / "cost.md"
MILLION_A_DAY = 1_000_000 / 86_400


def default_stage() -> StackSettings:
    stages = json.loads((ROOT / "cdk.json").read_text())["context"]["stages"]
    return StackSettings.for_stage(json.loads((ROOT / "cdk.json").read_text())["context"]["stage"], stages)


def cost_document_rows(batch_size: int) -> list[dict[str, float]]:
    """The rows of docs/cost.md's table for ``batch_size``: duration and the $ per million of each line."""
    rows = []
    pattern = re.compile(
        rf"^\| {batch_size} \| [^|]+ \| ([\d.]+) ms \| \$([\d.]+) \| \$([\d.]+) \| \$([\d.]+) \|", re.MULTILINE
    )
    for match in pattern.finditer(COST_DOCUMENT.read_text()):
        duration, requests, compute, sqs = (float(group) for group in match.groups())
        rows.append({"batch_ms": duration, "requests": requests, "duration": compute, "sqs": sqs})
    return rows


@pytest.mark.parametrize("row", cost_document_rows(10), ids=lambda row: f"{row['batch_ms']} ms a batch")
def test_cost_lines_of_default_stage_at_a_million_a_day_match_docs_cost(row):
    # GIVEN the default stage (batch 10), a million messages a day, and the batch duration of docs/cost.md
    stage = default_stage()
    assert stage.batch_size == 10
    mapping = Mapping.of(stage)
    per_record = row["batch_ms"] / stage.batch_size
    workload = Workload(ArrivalProfile(MILLION_A_DAY), HandlerTime(per_record, per_record))

    # WHEN the planner bills a month with full batches, as docs/cost.md does
    p = plan(mapping, workload)
    lines = monthly_cost(stage, mapping, workload, p.steady, price_sheet("us-east-1"), full_batches=True)

    # THEN each line, per million messages, is docs/cost.md's figure
    millions = workload.monthly_messages / 1_000_000
    by_item = {line.item: (line.monthly or 0.0) / millions for line in lines}
    sqs = sum(v for item, v in by_item.items() if item.split(" (")[0] in ("producer sends", "mapping receives",
                                                                           "deletes"))  # fmt: skip
    assert round(by_item["requests (one per batch)"], 4) == row["requests"]
    duration_item = next(item for item in by_item if item.startswith("duration, arm64 256 MB"))
    assert round(by_item[duration_item], 4) == row["duration"]
    assert round(sqs, 4) == row["sqs"]


def test_cost_at_a_million_a_day_without_full_batches_bills_the_small_batches_of_a_low_rate():
    # GIVEN the default stage without a window at 11.6 messages a second
    stage = default_stage()
    workload = Workload(ArrivalProfile(MILLION_A_DAY), HandlerTime(5, 5))
    p = plan(Mapping.of(stage), workload)

    # WHEN billed at the batch size the planner expects
    lines = monthly_cost(stage, Mapping.of(stage), workload, p.steady, price_sheet())

    # THEN a receive holds what arrived in its round trip, so there are more requests than full batches give
    requests = next(line for line in lines if line.item.startswith("requests"))
    assert p.steady.records_per_batch < 2
    assert requests.quantity == pytest.approx(workload.monthly_messages / p.steady.records_per_batch)


def test_cost_lines_without_a_price_say_not_priced_and_every_price_names_its_source():
    # GIVEN a stage in provisioned mode (event poller units are not in prices.toml)
    stage = StackSettings.model_validate({"provisioned_pollers": {"minimum": 2, "maximum": 10}})
    workload = Workload(ArrivalProfile(10), HandlerTime(20, 20), duplicate_rate=0.01)
    mapping = Mapping.of(stage)
    prices = price_sheet()

    # WHEN billed
    lines = monthly_cost(stage, mapping, workload, plan(mapping, workload).steady, prices)

    # THEN the pollers are not priced rather than guessed, and every priced line has a source page
    pollers = next(line for line in lines if "pollers" in line.item)
    assert pollers.unit_price is None and pollers.monthly is None
    for line in lines:
        if line.unit_price is not None:
            assert prices.source(line.price_name).startswith("https://aws.amazon.com/"), line


def test_price_sheet_unknown_region_is_an_error_naming_the_priced_ones():
    with pytest.raises(UnpricedRegionError, match="priced: us-east-1"):
        price_sheet("xx-nowhere-1")


def test_benchmark_cost_reads_the_same_prices():
    from benchmarks import cost

    prices = price_sheet()
    assert prices.get("lambda_arm64_gb_second") == cost.LAMBDA_ARM_GB_SECOND
    assert prices.get("sqs_standard_request") == cost.SQS_REQUEST
    assert prices.checked_on == cost.PRICES_CHECKED_ON
    assert "prices.toml" in PRICES_FILE.name


def checks_of(stage: StackSettings, workload: Workload, **kwargs) -> dict[str, bool]:
    p = plan(Mapping.of(stage), workload)
    return {c.name: c.ok for c in run_checks(p, alarm_age_seconds=stage.oldest_message_age_alarm_seconds, **kwargs)}


def test_checks_pass_for_the_default_stage_at_a_light_load():
    checks = checks_of(default_stage(), Workload(ArrivalProfile(5), HandlerTime(20, 100)), max_age_seconds=60)
    assert all(checks.values()), checks


def test_checks_flag_a_batch_whose_p99_outlasts_the_time_budget():
    # GIVEN a 10 s timeout with a 4 s reserve and a handler whose p99 is 3 s
    stage = StackSettings.model_validate(
        {"function_timeout_seconds": 10, "time_reserve_seconds": 4, "visibility_timeout_seconds": 60}
    )
    checks = checks_of(stage, Workload(ArrivalProfile(1), HandlerTime(500, 3_000)), max_age_seconds=None)
    assert checks["batch p99 within the time budget"] is False


def test_checks_flag_throttling_when_the_pollers_outrun_reserved_concurrency():
    # GIVEN provisioned pollers that may drive 200 invokes and a reserved concurrency of 50, at a rate needing 90:
    # a stage the synth refuses today (reserved concurrency must cover 10 x the pollers), as one deployed
    # before that rule, or sketched to be planned, may still hold
    stage = StackSettings.model_construct(
        **{**dict(StackSettings.model_validate({})), "provisioned_pollers": ProvisionedPollers(minimum=2, maximum=20),
           "reserved_concurrency": 50}
    )  # fmt: skip
    checks = checks_of(stage, Workload(ArrivalProfile(500), HandlerTime(120, 900)), max_age_seconds=None)
    assert checks["no throttling pushes messages towards maxReceiveCount"] is False
    assert checks["keeps up at the peak rate"] is False


def test_checks_flag_payload_window_and_alarm_limits():
    # GIVEN 250 KB bodies in batches of 100, a 30 s window, retries, and an alarm at 60 s
    stage = StackSettings.model_validate(
        {"batch_size": 100, "max_batching_window_seconds": 30, "oldest_message_age_alarm_seconds": 60}
    )
    workload = Workload(ArrivalProfile(1), HandlerTime(20, 20), payload_bytes=250_000, failure_rate=0.1)
    checks = checks_of(stage, workload, max_age_seconds=10)
    assert checks["6 MB invocation payload"] is False
    assert checks["memory vs payload x batch size"] is True  # the event stops at 6 MB
    assert checks["oldest message vs latency target"] is False
    # 10 + 20 + 40 + 80 s of backoff before the last receive: older than the alarm
    assert checks["oldest-message alarm vs expected ages"] is False


def test_checks_flag_memory_for_offloaded_payloads_fetched_by_a_batch():
    # GIVEN 2 MB payloads, over the queue's maximum message size, so each body is an S3 pointer
    stage = StackSettings.model_validate({"batch_size": 100, "max_batching_window_seconds": 1})
    workload = Workload(ArrivalProfile(1), HandlerTime(20, 20), payload_bytes=2_000_000)
    checks = checks_of(stage, workload, max_age_seconds=None)
    assert checks["6 MB invocation payload"] is True
    assert checks["memory vs payload x batch size"] is False


def test_suggestion_meets_the_latency_target_where_the_stage_does_not_keep_up():
    # GIVEN prod (10 concurrent batches) and 400 messages a second of 120 ms (p99 900 ms)
    stage = StackSettings.for_stage("prod", json.loads((ROOT / "cdk.json").read_text())["context"]["stages"])
    workload = Workload(ArrivalProfile(400), HandlerTime(120, 900))
    assert not plan(Mapping.of(stage), workload).peak.keeps_up

    # WHEN asked for settings meeting a 60 s oldest age
    found = suggest(stage, workload, price_sheet(), max_age=60, account_concurrency=1_000)

    # THEN the suggestion keeps up, meets the target, passes every check and says what changes
    assert found is not None
    assert found.plan.peak.keeps_up
    assert max(found.plan.steady.oldest_age_seconds, found.plan.ramp.peak_age_seconds) <= 60
    changed = {name for name, _, _ in found.diff(stage)}
    assert "max_concurrency" in changed
    assert found.settings.reserved_concurrency is not None
    assert found.settings.reserved_concurrency >= found.settings.max_concurrency


def test_cli_prints_json_with_every_section(capsys):
    # prod does not keep up with 400 a second: FAIL rows, exit 1
    assert run(["--stage", "prod", "--rate", "400", "--handler-ms", "120", "--handler-p99-ms", "900",
                "--burst", "100000@5m", "--max-age", "60s", "--json"]) == 1  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    assert {"steady", "peak", "ramp", "bursts", "checks", "cost", "suggestion"} <= set(result)
    assert result["bursts"][0]["messages"] == 100_000 and result["bursts"][0]["at_seconds"] == 300
    assert result["cost"]["lines"][0]["source"] == "https://aws.amazon.com/lambda/pricing/"


def test_cli_table_and_simulation_chart(capsys):
    assert run(["--stage", "local", "--rate", "20", "--handler-ms", "50", "--burst", "2000@30s",
                "--simulate", "--horizon", "60s"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    for heading in ("Capacity", "Checks", "Monthly cost", "Queue depth", "Planner beside the simulation"):
        assert heading in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rate", "x", "--handler-ms", "1"], "is not a number"),
        (["--handler-ms", "1"], "one of the arguments --rate --per-day --csv is required"),
        (["--rate", "1", "--handler-ms", "1", "--burst", "many"], "is not a burst"),
        (["--rate", "1", "--handler-ms", "1", "--max-age", "soon"], "is not a duration"),
        (["--rate", "1", "--handler-ms", "5", "--handler-p99-ms", "1"], "p99 (1 ms) must be >= p50"),
        (["--rate", "1", "--handler-ms", "1", "--stage", "nope"], "unknown stage 'nope'"),
        (["--rate", "1", "--handler-ms", "1", "--region", "xx-nowhere-1"], "no prices for region"),
        (["--rate", "1", "--handler-ms", "1", "--failure-rate", "1.5"], "failure rate must be in [0, 1)"),
    ],
)
def test_cli_bad_input_is_one_line_and_exits_2(argv, message, capsys):
    code: object
    try:
        code = run(argv)
    except SystemExit as exit_:
        code = exit_.code
    [line] = capsys.readouterr().err.splitlines()
    assert code == 2
    assert line.startswith("sqs-plan: error: ")
    assert message in line


def test_cli_a_cdk_json_it_cannot_read_is_one_line(tmp_path, monkeypatch, capsys):
    # GIVEN a cdk.json with a syntax error
    (tmp_path / "cdk.json").write_text('{"context": {"stages": {,}}}')
    monkeypatch.setattr("planning.cli.ROOT", tmp_path)

    # WHEN a stage of it is planned: THEN one line names the file and the error, exit 2
    assert run(["--stage", "dev", "--rate", "1", "--handler-ms", "1"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"sqs-plan: error: cannot read context.stages from {tmp_path / 'cdk.json'}: Expecting")


def test_cli_stage_file_with_a_broken_rule_is_refused(tmp_path, capsys):
    stage_file = tmp_path / "big.json"
    stage_file.write_text(json.dumps({"batch_size": 100}))
    assert run(["--stage-file", str(stage_file), "--rate", "1", "--handler-ms", "1"]) == 2
    assert "needs max_batching_window_seconds" in capsys.readouterr().err


def test_csv_profile_reads_messages_per_minute_and_refuses_text(tmp_path):
    good = tmp_path / "minutes.csv"
    good.write_text("minute,messages\n0,600\n1,1200\n")
    profile = ArrivalProfile.from_csv(good, (Burst(30, 100),))
    assert profile.peak_rate == 20 and profile.mean_rate == 15
    assert profile.arrived_by(90) == 600 + 600 + 100
    bad = tmp_path / "bad.csv"
    bad.write_text("minute,messages\n0,600\n1,lots\n")
    with pytest.raises(WorkloadError, match="'lots' is not a number"):
        ArrivalProfile.from_csv(bad)


def test_measured_handler_times_give_their_quantiles_and_mean():
    handler = HandlerTime.measured([10, 20, 30, 40, 1_000])
    assert handler.p50_ms == 30
    assert handler.mean_ms == 220
    assert handler.expected_max_ms(1) == 220
    assert handler.expected_max_ms(50) == pytest.approx(1_000, rel=0.01)


def test_handler_times_read_back_from_the_functions_emf_logs(tmp_path):
    # GIVEN a function log with two EMF documents, a plain log line and a line that is not JSON
    emf = {"_aws": {"CloudWatchMetrics": []}, "event_type": "hello"}
    lines = [
        json.dumps({**emf, "RecordsProcessed": [3.0], "RecordsFailed": [1.0], "ProcessingTime": [12.5]}),
        json.dumps({"level": "INFO", "message": "Batch complete"}),
        '{"ProcessingTime": not json',
        json.dumps({**emf, "RecordsProcessed": [2.0], "ProcessingTime": [40.0]}),
    ]
    (tmp_path / "function-0.log").write_text("\n".join(lines))

    # WHEN read back, then planned
    from planning.measured import handler_times_from_logs

    samples = handler_times_from_logs(tmp_path)

    # THEN each batch's mean counts once per record it covers
    assert samples == [12.5] * 4 + [40.0] * 2
    assert HandlerTime.measured(samples).mean_ms == pytest.approx((12.5 * 4 + 80) / 6)


def test_handler_times_read_back_from_value_arrays_weigh_each_value_by_the_records_it_stands_for(tmp_path):
    # GIVEN a batch with a value per record, and one of 300 records summed up in EMF's 100 values at most
    emf = {"_aws": {"CloudWatchMetrics": []}, "event_type": "hello"}
    lines = [
        json.dumps({**emf, "RecordsProcessed": [2.0], "RecordsFailed": [1.0], "ProcessingTime": [1.0, 2.0, 3.0]}),
        json.dumps({**emf, "RecordsProcessed": [300.0], "ProcessingTime": [float(n) for n in range(100)]}),
    ]
    (tmp_path / "function-0.log").write_text("\n".join(lines))
    from planning.measured import handler_times_from_logs

    samples = handler_times_from_logs(tmp_path)

    # THEN each record counts once: the first batch's times as they are, the summary's each three times
    assert samples[:3] == [1.0, 2.0, 3.0]
    assert len(samples) == 303 and samples[3:] == [float(n) for n in range(100) for _ in range(3)]


def test_handler_times_from_a_folder_without_metrics_is_a_clear_error(tmp_path, capsys):
    assert run(["--rate", "1", "--handler-times-from-logs", str(tmp_path)]) == 2
    assert "no ProcessingTime metrics" in capsys.readouterr().err


def test_the_limit_names_what_binds_the_concurrency():
    workload = Workload(ArrivalProfile(400), HandlerTime(120, 900))
    unreserved = Mapping.of(StackSettings.model_validate({"max_concurrency": 200}), account_concurrency=50)
    assert plan(unreserved, workload).steady.limit == 50
    assert plan(unreserved, workload).steady.limited_by == "account concurrency"
    reserved = Mapping.of(StackSettings.model_validate({"max_concurrency": 20, "reserved_concurrency": 30}))
    assert (plan(reserved, workload).steady.limit, plan(reserved, workload).steady.limited_by) == (
        20,
        "maximum concurrency",
    )
