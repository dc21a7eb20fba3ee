"""`sqs-dlq` against the running local pipeline, as the person on call runs it: the cause not fixed yet."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.pipeline import Pipeline, running_pipeline
from local.sqs_server import LOCAL_CREDENTIALS
from operations.letters import approximate_count

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pipeline(local_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    with running_pipeline(local_template, tmp_path_factory.mktemp("logs")) as running:
        yield running


@pytest.fixture
def poisoned(pipeline: Pipeline) -> Iterator[Pipeline]:
    """The DLQ emptied, then three messages with an invalid payload published and quarantined."""
    _empty(pipeline, pipeline.dead_letter_queue.url)
    for n in range(3):
        body = {"event_id": f"evt_poison_{time.monotonic_ns()}_{n}", "event_type": "document.processed",
                "payload": {"document_id": ""}}  # fmt: skip
        pipeline.client.send_message(QueueUrl=pipeline.queue.url, MessageBody=json.dumps(body))
    _wait_for_dlq(pipeline, visible=3)
    yield pipeline


def _empty(pipeline: Pipeline, url: str) -> None:
    while messages := pipeline.client.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            pipeline.client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def _wait_for_dlq(pipeline: Pipeline, *, visible: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        count = approximate_count(pipeline.client, pipeline.dead_letter_queue.url)
        if count.visible == visible and count.in_flight == 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"the DLQ holds {count.describe()}, not {visible} visible")


def sqs_dlq(pipeline: Pipeline, *args: str) -> subprocess.Popen[str]:
    """The installed command as a user runs it, with the connection the pipeline prints."""
    command = [sys.executable, "-m", "operations.dlq", "--endpoint-url", pipeline.server.endpoint_url,
               "--region", "us-east-1", *args]  # fmt: skip
    env = {**os.environ, **LOCAL_CREDENTIALS}
    return subprocess.Popen(command, cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_redrive_with_the_cause_unfixed_returns_within_seconds_with_a_summary(poisoned: Pipeline):
    # GIVEN three poison messages in the DLQ, their cause not fixed
    started = time.monotonic()

    # WHEN the on-call engineer redrives them anyway
    process = sqs_dlq(poisoned, "redrive", "--dlq-arn", poisoned.dead_letter_queue.arn, "--include-poison",
                      "--rate", "10")  # fmt: skip
    out, err = process.communicate(timeout=60)

    # THEN it returns within seconds, saying each came straight back, and they are in the DLQ again
    assert process.returncode == 0, err
    assert time.monotonic() - started < 30
    assert "moved 3 message(s)" in out
    assert "came straight back: 3 (3 invalid_payload)" in out
    assert "Traceback" not in err
    _wait_for_dlq(poisoned, visible=3)


def test_redrive_by_default_leaves_poison_kinds_and_says_why(poisoned: Pipeline):
    process = sqs_dlq(poisoned, "redrive", "--dlq-arn", poisoned.dead_letter_queue.arn)
    out, err = process.communicate(timeout=60)

    assert process.returncode == 0, err
    assert "moved 0 message(s)" in out
    assert "skipped 3 (3 invalid_payload)" in out
    _wait_for_dlq(poisoned, visible=3)


def test_redrive_on_ctrl_c_prints_its_summary_and_gives_back_what_it_held(poisoned: Pipeline):
    # GIVEN a slow redrive under way (one message a second)
    process = sqs_dlq(poisoned, "redrive", "--dlq-arn", poisoned.dead_letter_queue.arn, "--include-poison",
                      "--rate", "1", "--watch", "0")  # fmt: skip
    deadline = time.monotonic() + 20
    while approximate_count(poisoned.client, poisoned.dead_letter_queue.url).in_flight == 0:
        assert time.monotonic() < deadline and process.poll() is None, "the redrive never received a message"
        time.sleep(0.05)
    time.sleep(0.3)  # the first message has moved; the next leaves a second later

    # WHEN it is interrupted as Ctrl-C does
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=15)

    # THEN it prints its summary, exits 130 without a traceback, and hides nothing any more
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted: every message not yet moved is visible in the DLQ again" in out
    count = approximate_count(poisoned.client, poisoned.dead_letter_queue.url)
    moved = int(re.search(r"moved (\d+) message", out)[1])  # type: ignore[index]
    assert 1 <= moved < 3
    assert count.in_flight == 0  # nothing it received is still hidden


def test_status_is_one_readable_line_when_move_tasks_are_unavailable(poisoned: Pipeline):
    process = sqs_dlq(poisoned, "status", "--dlq-arn", poisoned.dead_letter_queue.arn)
    out, err = process.communicate(timeout=30)

    assert process.returncode == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 2
    assert "about 3 visible" in lines[0]
    assert lines[1].startswith("SQS move tasks: not available from this endpoint")
    assert "<" not in lines[1] and len(lines[1]) < 160
