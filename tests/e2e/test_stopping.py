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
        try:
            children = (task / "children").read_text().split()
        except OSError:  # the thread ended between the listing and the read
            continue
        for child in children:
            found |= {int(child), *descendants(int(child))}
    return found


def _stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name: state, ppid, pgrp, ... (empty once gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def running(pid: int) -> bool:
    fields = _stat(pid)
    return bool(fields) and fields[0] != "Z"


def running_in(groups: set[int]) -> list[int]:
    """Processes of these process groups still running (one started after a snapshot included)."""
    pids = (int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit())
    return [pid for pid in pids if running(pid) and int(_stat(pid)[2] if _stat(pid) else -1) in groups]


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


def synth_recipe(stage: str) -> str:
    """The command `make synth` runs for the CDK CLI (make -n prints it; the settings check comes first)."""
    dry = subprocess.run(["make", "-n", "--no-print-directory", "synth", f"STAGE={stage}"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return dry.strip().splitlines()[-1]


def test_sigterm_to_make_synth_stops_the_cdk_app_and_leaves_no_lock(tmp_path: Path):
    # GIVEN the command `make synth` runs, writing to a folder of the test's, as make starts it
    out = tmp_path / "cdk.out"
    env = {**ENV, "PATH": f"{ROOT / '.venv' / 'bin'}:{ROOT / 'node_modules' / '.bin'}:{os.environ['PATH']}"}
    process = subprocess.Popen(["/bin/bash", "-c", f"exec {synth_recipe('dev')} -o {out}"], cwd=ROOT, env=env,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    # WHEN make passes on a SIGTERM while the CDK app runs (the CLI holds its lock)
    deadline = time.monotonic() + 120
    while not (out / "synth.lock").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (out / "synth.lock").exists(), "the CDK CLI never took its lock"
    while not any(b"app.py" in _cmdline(pid) for pid in descendants(process.pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # the app builds the stack
    groups = {int(_stat(pid)[2]) for pid in descendants(process.pid) | {process.pid}}
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    written_at_exit = sorted(path.name for path in out.iterdir())

    # THEN every process it started is stopped by the time it exits: nothing writes cdk.out afterwards
    assert running_in(groups) == []
    time.sleep(3)
    assert sorted(path.name for path in out.iterdir()) == written_at_exit
    # AND it leaves no lock, and says in one line that it stopped
    assert not list(out.glob("*.lock"))
    assert process.returncode == 128 + signal.SIGTERM
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("cdk synth: stopped")
