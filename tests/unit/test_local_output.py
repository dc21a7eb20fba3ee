"""What the local tools print: each batch's outcomes in serve mode, the fault run's table and progress."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

from rich.console import Console

from local import demo
from local.batch_outcomes import batch_outcomes
from local.emulator import FunctionLog, ReportLines
from local.event_source import BatchResult
from local.fault_run import KINDS, FaultReport, Planned, ProgressLines, render


def _log(path: Path, *records: dict, trace_ids: tuple[str, ...] = ()) -> FunctionLog:
    """A log holding an earlier invocation's lines, then this one's records and the emulator's REPORT line."""
    earlier = json.dumps({"level": "WARNING", "message": "Record quarantined to the DLQ", "message_id": "m-1",
                          "kind": "malformed_json"})  # fmt: skip
    path.write_text(earlier + "\nREPORT RequestId: a\n")
    offset = path.stat().st_size
    with path.open("a") as log:
        log.write("START RequestId: b\n")
        for record in records:
            log.write(json.dumps(record) + "\n")
        log.write("END RequestId: b\nREPORT RequestId: b Duration: 5 ms\n")
    return FunctionLog(path, offset, trace_ids)


def test_batch_outcomes_tell_a_quarantine_and_a_duplicate_from_a_success(tmp_path: Path):
    # GIVEN a batch of four, all deleted but one listed, whose log says m-1 was quarantined, m-2 a duplicate
    log = _log(
        tmp_path / "function-0.log",
        {
            "level": "WARNING",
            "message": "Record quarantined to the DLQ",
            "message_id": "m-1",
            "kind": "invalid_payload",
        },
        {"level": "INFO", "message": "Duplicate acknowledged without running its handler", "message_id": "m-2"},
        {"level": "WARNING", "message": "Record failed; it will be retried", "message_id": "m-4"},
    )
    result = BatchResult(("m-1", "m-2", "m-3", "m-4"), ("m-1", "m-2", "m-3"), ("m-4",), "partial", 0.012, log)

    # WHEN the serve mode describes it
    line = batch_outcomes(result).describe(12)

    # THEN each record is counted as what it came to; the earlier invocation's lines are not read
    assert line == (
        "batch of 4: 1 succeeded, 1 duplicate, 1 listed for retry, 1 quarantined (1 invalid_payload) in 12 ms"
    )


def test_batch_outcomes_name_the_trace_ids_of_the_batch(tmp_path: Path):
    traces = tuple(f"1-6942a1b0-{n:024x}" for n in range(5))
    log = _log(tmp_path / "function-0.log", trace_ids=traces)
    result = BatchResult(tuple(f"m-{n}" for n in range(5)), tuple(f"m-{n}" for n in range(5)), (), "ok", 0.004, log)

    line = batch_outcomes(result).describe(4)

    assert line.endswith(f"in 4 ms; trace {traces[0]}, {traces[1]}, {traces[2]} (+2)")


def test_batch_outcomes_of_a_function_error_delete_nothing(tmp_path: Path):
    result = BatchResult(("m-1", "m-2"), (), ("m-1", "m-2"), "function_error", 3.0, None)

    line = batch_outcomes(result).describe(3000)

    assert line == "batch of 2: function error: nothing deleted, all 2 return after the visibility timeout (3000 ms)"


def _report() -> FaultReport:
    report = FaultReport(seconds=12)
    for index, kind in enumerate(KINDS):
        report.published[f"m-{index}"] = Planned(kind, "{}", f"evt_{index}")
        report.states[f"m-{index}"] = demo.SUCCEEDED
    report.published["m-late-2"] = Planned("late", "{}", "evt_late_2")
    report.states["m-late-2"] = demo.NEVER_STARTED
    report.effects = Counter()
    return report


def test_fault_run_table_explains_each_row_and_the_late_outcomes():
    console = Console(file=io.StringIO(), width=260, highlight=False)

    render(_report(), console)

    out = console.file.getvalue()  # type: ignore[attr-defined]
    late_row = next(line for line in out.splitlines() if line.startswith("│ late"))
    assert "quarantined, never started or quarantined after retries or succeeded" in late_row
    assert "2 (1 quarantined, never started, 0 quarantined after retries, 1 succeeded)" in late_row
    for kind in KINDS:
        assert f"  {kind}: " in out
    assert "inconsistent: deleted by the mapping and also in the DLQ without a reason" in out


def test_progress_lines_when_the_output_is_not_a_terminal():
    # GIVEN a console writing to a file (a CI log), and a clock
    now = [0.0]
    console = Console(file=io.StringIO(), width=200)
    lines = ProgressLines(console, every=5.0, clock=lambda: now[0])

    # WHEN the figures change every second for twelve seconds
    for second in range(12):
        now[0] = float(second)
        lines.show(f"settled {second}/12")

    # THEN one line every five seconds, each with its time
    assert console.file.getvalue().splitlines() == [  # type: ignore[attr-defined]
        "      0 s  settled 0/12", "      5 s  settled 5/12", "     10 s  settled 10/12",
    ]  # fmt: skip


def test_progress_lines_stay_quiet_on_a_terminal():
    console = Console(file=io.StringIO(), force_terminal=True)
    lines = ProgressLines(console)

    lines.show("settled 1/1", force=True)

    assert console.file.getvalue() == ""  # type: ignore[attr-defined]


def test_report_lines_leave_out_the_emulators_own_lines_unless_asked():
    # GIVEN the emulator's output for a cold invocation, read for its durations
    lines = ReportLines(lambda: [], show_emulator_lines=False)
    output = [
        "06 Dec 2026 07:04:46,224 [INFO] (rapid) INIT REPORT(durationMs: 979.695000)\n",
        "START RequestId: a Version: $LATEST\n",
        "06 Dec 2026 07:04:46,237 [INFO] (rapid) INVOKE RTDONE(status: success, produced bytes: 0, "
        "duration: 12.31ms)\n",
        "REPORT RequestId: a\tInit Duration: 0.02 ms\tDuration: 993.44 ms\tBilled Duration: 994 ms\t"
        "Memory Size: 256 MB\tMax Memory Used: 256 MB\t\n",
    ]

    # WHEN it goes through
    written = [line for line in map(lines.see, output) if line is not None]

    # THEN only the function's lines are kept, and the REPORT line says what was measured (no process: no memory)
    assert written[0].startswith("START")
    assert written[1] == ("REPORT RequestId: a\tInit Duration: 979.70 ms\tDuration: 12.31 ms\tBilled Duration: 994 ms"
                          "\tMemory Size: 256 MB\tMax Memory Used: 256 MB\t\n")  # fmt: skip
