"""README drift: every `.venv/bin/...` command in README.md's shell examples runs as written.

They run in a plain shell (bash, no PYTHONPATH, from a folder that only links .venv) against the
local pipeline: botocore's AWS_ENDPOINT_URL points them at it, and QUEUE_URL, DLQ_URL and DLQ_ARN
hold what the stack outputs would.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from local.pipeline import running_pipeline
from local.sqs_server import LOCAL_CREDENTIALS
from tests.e2e.conftest import run_as_written

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / ".venv" / "bin"


def readme_commands() -> list[str]:
    """The lines of README.md's bash blocks that run the project's installed commands."""
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.DOTALL)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith(".venv/bin/")]


def test_readme_has_commands_to_check():
    commands = readme_commands()
    assert any("sqs-publish" in command for command in commands)
    assert {"peek", "redrive", "status"} <= {word for command in commands for word in command.split()}


@pytest.mark.skipif(not (SCRIPTS / "sqs-publish").exists(), reason="make setup installs the commands")
def test_every_readme_command_works_as_written(local_template: Path, tmp_path: Path):
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
        }
        run_as_written(readme_commands(), workdir, env)
