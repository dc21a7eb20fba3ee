"""The emulator's REPORT lines tell the truth: the runtime's peak memory, its init and each invoke's duration;
each invocation's log slice knows the trace ids of its records."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from local.emulator import FunctionEmulator, peak_resident_kb, process_tree
from local.template import FunctionSpec
from sqs_consumer.testing import events as sqs

pytestmark = pytest.mark.e2e

TRACE = "Root=1-6942a1b0-5f3c7e0a9b1d2c3e4f506172;Parent=53995c3f42cd8ad8;Sampled=1"
# A memory size far from what the runtime uses: the emulator's own line would say this.
MEMORY_MB = 1024


def _fields(report: str) -> dict[str, str]:
    return dict(field.split(": ", 1) for field in report.strip().split("\t")[1:] if ": " in field)


def _ms(value: str) -> float:
    return float(value.removesuffix(" ms"))


@pytest.fixture
def emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # The emulator's own lines kept in the log too: the durations it measures are checked against them.
    monkeypatch.setenv("LOCAL_EMULATOR_LOG_LEVEL", "info")
    environment = {"DLQ_URL": "http://127.0.0.1:9/123456789012/dlq", "AWS_ACCESS_KEY_ID": "local",
                   "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    spec = FunctionSpec("Function", "sqs_consumer.handler.lambda_handler", 10, MEMORY_MB)
    function = FunctionEmulator(spec, environment, log_path=tmp_path / "function-0.log")
    yield function, tmp_path / "function-0.log"
    function.stop()


def test_report_lines_give_the_runtimes_peak_memory_init_and_invoke_durations(emulator):
    function, log_path = emulator

    # WHEN two invocations run: a cold start, then a warm one
    first = function.invoke(sqs.event(sqs.record(sqs.body("hello"), trace_header=TRACE)))
    second = function.invoke(sqs.event(sqs.record(sqs.body("hello")), sqs.record(sqs.body("hello"))))
    assert first.log is not None and second.log is not None
    second.log.lines()  # its REPORT line is written
    rss_kb = sum(peak_resident_kb(pid) or 0 for pid in process_tree(sorted(function._runtime_pids())))
    text = log_path.read_text()

    # THEN each REPORT line's memory is the runtime's peak resident memory, within 10% of what /proc says
    reports = [_fields(line) for line in text.splitlines() if line.startswith("REPORT RequestId")]
    assert len(reports) == 2
    for report in reports:
        used_mb = int(report["Max Memory Used"].removesuffix(" MB"))
        assert used_mb != MEMORY_MB
        assert abs(used_mb - rss_kb / 1024) <= 0.10 * rss_kb / 1024
    # AND the cold one's init and both durations are those the emulator measured (its INIT REPORT and
    # INVOKE RTDONE lines), not "Init Duration: 0.02 ms" with the init counted in the Duration
    [init_ms] = [float(v) for v in re.findall(r"INIT REPORT\(durationMs: ([0-9.]+)\)", text)]
    invokes_ms = [float(v) for v in re.findall(r"INVOKE RTDONE\(.*duration: ([0-9.]+)ms\)", text)]
    assert _ms(reports[0]["Init Duration"]) == pytest.approx(init_ms, abs=0.01)
    assert "Init Duration" not in reports[1]
    assert [_ms(report["Duration"]) for report in reports] == pytest.approx(invokes_ms, abs=0.01)
    # AND each invocation's slice knows its records' trace ids
    assert first.log.trace_ids == ("1-6942a1b0-5f3c7e0a9b1d2c3e4f506172",)
    assert second.log.trace_ids == ()
