"""Runbook drift: the runbook's commands that target SQS or the project's own commands run as written.

Like the README's (test_readme.py): in a plain shell against the local pipeline, with the variables
the runbook's first block exports from the stack outputs. Commands for services the local stack does
not have (Lambda, CloudWatch, Logs) are only read by people.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from local.pipeline import running_pipeline
from local.sqs_server import LOCAL_CREDENTIALS, REGION
from tests.e2e.conftest import run_as_written

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / ".venv" / "bin"


def runbook_commands() -> list[str]:
    """Each command of the runbook's bash blocks (continuation lines joined) that calls SQS or our CLIs."""
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "docs" / "runbook.md").read_text(), flags=re.DOTALL)
    commands = [command.strip() for block in blocks for command in re.sub(r"\\\n\s*", "", block).splitlines()]
    return [command for command in commands if command.startswith((".venv/bin/", "aws sqs "))]


def test_the_runbook_has_sqs_and_dlq_commands_to_check():
    commands = runbook_commands()
    assert any(command.startswith("aws sqs get-queue-attributes") for command in commands)
    assert {"peek", "redrive", "status"} <= {word for command in commands for word in command.split()}


@pytest.mark.skipif(not (SCRIPTS / "sqs-dlq").exists(), reason="make setup installs the commands")
def test_every_runbook_sqs_command_works_as_written(local_template: Path, tmp_path: Path):
    # The AWS CLI is optional (the project's commands need only .venv); version 1 ignores
    # AWS_ENDPOINT_URL for SQS, so its commands get the --endpoint-url the runbook says to add locally.
    aws = shutil.which("aws")
    commands = [
        f'{c} --endpoint-url "$AWS_ENDPOINT_URL"' if c.startswith("aws ") else c
        for c in runbook_commands()
        if aws is not None or not c.startswith("aws ")
    ]
    workdir = tmp_path / "shell"
    workdir.mkdir()
    (workdir / ".venv").symlink_to(ROOT / ".venv")
    with running_pipeline(local_template, tmp_path / "logs") as pipeline:
        env = {
            "PATH": f"{Path(aws).parent}:/usr/bin:/bin" if aws else "/usr/bin:/bin",
            "HOME": str(tmp_path),
            **LOCAL_CREDENTIALS,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": pipeline.server.endpoint_url,
            "QUEUE_URL": pipeline.queue.url,
            "DLQ_URL": pipeline.dead_letter_queue.url,
            "DLQ_ARN": pipeline.dead_letter_queue.arn,
        }
        run_as_written(commands, workdir, env)
