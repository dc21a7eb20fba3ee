"""Docs drift: every command of README.md's and docs/'s shell examples that runs the project's installed
commands (`.venv/bin/...`) runs as written.

They run in a plain shell (bash, no PYTHONPATH, from a folder that only links .venv) against the
local pipeline: botocore's AWS_ENDPOINT_URL points them at it, and QUEUE_URL, DLQ_URL, DLQ_ARN and
PAYLOAD_BUCKET hold what the stack outputs would. `some-producer`, the docs' stand-in for an upstream
service, prints an event a line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from local.pipeline import running_pipeline
from local.sqs_server import LOCAL_CREDENTIALS
from tests.e2e.conftest import run_as_written
from tests.support.docs import block_commands, pages

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / ".venv" / "bin"
# The runbook's commands run in tests/e2e/test_runbook.py, with its own variables.
RUNBOOK = ROOT / "docs" / "runbook.md"
SOME_PRODUCER = (
    "some-producer() { printf '%s\\n' "
    '\'{"event_id": "evt_piped_1", "event_type": "hello", "payload": {"name": "piped"}}\'; }; '
)


def documented_commands() -> list[str]:
    """The lines of the bash blocks of README.md and docs/ (the runbook aside) that run installed commands."""
    lines = [line for page in pages() if page != RUNBOOK for line in block_commands(page.read_text())]
    return [line for line in lines if re.search(r"(^|\| )\.venv/bin/", line)]


def test_the_docs_have_commands_to_check():
    commands = documented_commands()
    assert any("sqs-publish" in command for command in commands)
    assert any(command.startswith("some-producer |") for command in commands)
    assert {"peek", "redrive", "status"} <= {word for command in commands for word in command.split()}


@pytest.mark.skipif(not (SCRIPTS / "sqs-publish").exists(), reason="make setup installs the commands")
def test_every_documented_command_works_as_written(local_template: Path, tmp_path: Path):
    workdir = tmp_path / "shell"
    workdir.mkdir()
    (workdir / ".venv").symlink_to(ROOT / ".venv")
    event = {"event_id": "evt_file_1", "event_type": "hello", "payload": {"name": "from a file"}}
    (workdir / "my-events.json").write_text(json.dumps([event]))
    with running_pipeline(local_template, tmp_path / "logs") as pipeline:
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            **LOCAL_CREDENTIALS,
            "AWS_ENDPOINT_URL": pipeline.server.endpoint_url,
            "QUEUE_URL": pipeline.queue.url,
            "DLQ_URL": pipeline.dead_letter_queue.url,
            "DLQ_ARN": pipeline.dead_letter_queue.arn,
            "PAYLOAD_BUCKET": pipeline.payload_bucket or "",
        }
        run_as_written([SOME_PRODUCER + command for command in documented_commands()], workdir, env)
