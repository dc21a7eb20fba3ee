"""Every command ends the same way on Ctrl-C, SIGTERM and a closed pipe (operations.cli)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'functions' / 'consumer'}"}

# A command that starts a child process (in its own session, as the local pipeline's are), says so,
# then waits; its child is stopped by the `finally` the interruption unwinds through.
WAITING_COMMAND = """
import sys, time
from pathlib import Path
from local.processes import ChildProcess
from operations.cli import command

@command
def main() -> int:
    child = ChildProcess(["sleep", "60"], env={})
    try:
        print(child.process.pid, flush=True)
        time.sleep(60)
    finally:
        time.sleep(0.5)  # an unwinding that takes a while: a second signal must not break it
        child.stop()
    return 0

sys.exit(main())
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead; its parent (the command) has exited, so init reaps it soon.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


@pytest.mark.parametrize("signals", [[signal.SIGINT], [signal.SIGTERM], [signal.SIGINT, signal.SIGINT]])
def test_a_stopped_command_says_stopped_exits_130_and_stops_its_children(signals):
    # GIVEN a command running with a child process
    process = subprocess.Popen([sys.executable, "-c", WAITING_COMMAND], env=ENV, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert process.stdout is not None
    child = int(process.stdout.readline())

    # WHEN it receives Ctrl-C (twice: once more while it stops), or SIGTERM
    for signum in signals:
        process.send_signal(signum)
        time.sleep(0.1)
    _, err = process.communicate(timeout=20)

    # THEN one line, "stopped", no traceback, exit 130, and its child is gone
    assert process.returncode == 130
    lines = err.splitlines()
    assert lines[-1] == "stopped"
    assert "Traceback" not in err
    assert len(lines) == len(signals)  # a second signal says once that it is finishing cleanly
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


@pytest.fixture(scope="module")
def sqs_server():
    from local.sqs_server import SqsServer

    server = SqsServer()
    try:
        yield server
    finally:
        server.stop()


def _with_closed_stdout(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Runs a command whose stdout is a pipe its reader already closed (`command | head -0`)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([sys.executable, *argv], env=env, stdout=write_end, stderr=subprocess.PIPE, text=True,
                              timeout=60, check=False)  # fmt: skip
    finally:
        os.close(write_end)


def test_a_reader_that_goes_away_ends_each_command_quietly(sqs_server, tmp_path):
    # GIVEN a DLQ holding a message, and a file of events
    from local.sqs_server import LOCAL_CREDENTIALS

    client = sqs_server.client()
    url = client.create_queue(QueueName="closed-pipe-dlq")["QueueUrl"]
    arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    client.send_message(QueueUrl=url, MessageBody="{}")
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(f'{{"event_id": "e{i}", "event_type": "hello", "payload": {{"name": "x"}}}}'
                                for i in range(3)))  # fmt: skip
    env = {**ENV, **LOCAL_CREDENTIALS}
    connection = ["--endpoint-url", sqs_server.endpoint_url, "--region", "us-east-1"]
    commands = [
        ["-m", "operations.dlq", "status", "--dlq-arn", arn, *connection],
        ["-m", "operations.dlq", "peek", "--queue-url", url, *connection],
        ["-m", "publisher", "--queue-url", url, "--file", str(events), *connection],
    ]
    for argv in commands:
        # WHEN its output goes to a reader that has gone
        result = _with_closed_stdout(argv, env)

        # THEN no BrokenPipeError, no traceback: the status a shell gives a tool that SIGPIPE stopped
        assert "Error" not in result.stderr, (argv, result.stderr)
        assert result.returncode == 141, (argv, result.stderr)
