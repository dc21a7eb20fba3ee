"""What the local tools print: each batch's outcomes in serve mode, the fault run's table and progress."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

from rich.console import Console

from local import demo
from local.batch_outcomes import batch_outcomes
from local.emulator import FunctionLog
from local.event_source import BatchResult
from local.fault_run import KINDS, FaultReport, Planned, ProgressLines, render


def _log(path: Path, *records: dict) -> FunctionLog:
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
    return FunctionLog(path, offset)


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
