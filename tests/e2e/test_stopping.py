"""Ctrl-C on the local runs: one line, exit 130, every process they started stopped, no traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'functions' / 'consumer'}", "COLUMNS": "200"}

pytestmark = pytest.mark.e2e


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (the local pipeline's run in sessions of their own)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        for child in (task / "children").read_text().split():
            found |= {int(child), *descendants(int(child))}
    return found


def running(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def interrupt_once_started(argv: list[str], started: str) -> tuple[int, str, set[int]]:
    """Runs a command until it prints ``started``, sends it Ctrl-C; its exit status, its output, the
    processes it had started."""
    process = subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)  # fmt: skip
    assert process.stdout is not None
    output = []
    for line in process.stdout:
        output.append(line)
        if started in line:
            break
    children = descendants(process.pid)
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=60)
    return process.returncode, "".join(output) + rest, children


def assert_all_stopped(children: set[int]) -> None:
    assert children, "the run had started no process"
    deadline = time.monotonic() + 5
    while any(running(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if running(pid)]


def test_the_demo_stopped_by_ctrl_c_is_one_line_not_a_failure(local_template: Path):
    # GIVEN `make local`, once it has published the demo mix; WHEN Ctrl-C arrives before all settled
    code, output, children = interrupt_once_started(
        ["-m", "local", "--template", str(local_template), "demo"], "Published"
    )

    # THEN it says it stopped and how far it got, not that messages are unexpectedly in flight
    assert code == 130, output
    assert "unexpected" not in output
    assert "Traceback" not in output
    assert output.splitlines()[-1].startswith("stopped after ")
    # AND moto and every function instance are stopped
    assert_all_stopped(children)


def test_the_fault_run_stopped_by_ctrl_c_says_stopped_without_a_traceback(local_template: Path):
    # GIVEN `make chaos`, once it has published; WHEN Ctrl-C arrives
    code, output, children = interrupt_once_started(
        ["-m", "local.fault_run", "--template", str(local_template), "--messages", "100"], "published"
    )

    # THEN one line, exit 130, and every process it started is stopped
    assert code == 130, output
    assert "Traceback" not in output
    assert output.splitlines()[-1] == "stopped"
    assert_all_stopped(children)
