"""The whole system on loopback: moto, the Lambda emulator and the emulated mapping."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local import demo, sample_payloads
from local.event_source import BatchResult
from local.pipeline import Pipeline, running_pipeline
from local.sqs_server import s3_client, sqs_client
from publisher.client import EventPublisher
from tests.e2e.conftest import settle
from tests.unit.test_sample_events import SAMPLE_EVENTS, expected_for

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
SHAPE_LABELS = ("SNS notification", "EventBridge (detail an event)", "EventBridge (routed by detail-type)",
                "offloaded to S3 (1.1 MB)")  # fmt: skip


@pytest.fixture(scope="module")
def invoker(local_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    with running_pipeline(local_template, tmp_path_factory.mktemp("logs"), poll=False, instances=1) as pipeline:
        sample_payloads.stage(s3_client(pipeline.server.endpoint_url), SAMPLE_EVENTS[0].parent)
        yield pipeline


def drain(pipeline: Pipeline) -> None:
    """Empty the DLQ (PurgeQueue is rate-limited to once a minute)."""
    while messages := pipeline.client.receive_message(
        QueueUrl=pipeline.dead_letter_queue.url, MaxNumberOfMessages=10
    ).get("Messages", []):
        for message in messages:
            pipeline.client.delete_message(
                QueueUrl=pipeline.dead_letter_queue.url, ReceiptHandle=message["ReceiptHandle"]
            )


@pytest.mark.parametrize("path", SAMPLE_EVENTS, ids=lambda p: p.name)
def test_emulator_invocation_of_sample_event_gives_expected_response(invoker: Pipeline, path: Path):
    # GIVEN a sample event and an empty DLQ
    drain(invoker)
    expected = expected_for(path)

    # WHEN the function runs it under the Lambda emulator, as `make invoke` does
    invocation = invoker.functions[0].invoke(json.loads(path.read_text()))

    # THEN the response is the expected one and the poison went to the local DLQ
    assert not invocation.function_error, invocation.payload
    assert invocation.payload == {"batchItemFailures": expected["batchItemFailures"]}
    dead = demo.dead_letters(invoker.client, invoker.dead_letter_queue.url)
    assert sorted(dead) == sorted(expected["quarantined"])


def test_demo_mix_every_message_reaches_its_expected_state(local_template: Path, tmp_path: Path):
    # GIVEN the local pipeline and the demo mix (successes, slow, flaky, failing, poison, and one event in
    # each upstream shape: SNS, EventBridge twice, offloaded to the stage's payload bucket in moto's S3)
    ledger = demo.Ledger()
    with running_pipeline(local_template, tmp_path, on_batch=ledger.on_batch) as pipeline:
        # (the template's bucket, made in moto's S3, named in the function's environment)
        assert pipeline.plan.function.environment["PAYLOAD_BUCKET"] == {"Ref": pipeline.plan.buckets[0]}
        assert pipeline.payload_bucket is not None
        s3_client(pipeline.server.endpoint_url).head_bucket(Bucket=pipeline.payload_bucket)
        messages = demo.demo_mix(demo.offloader(pipeline.server.endpoint_url, pipeline.payload_bucket))
        published = demo.publish(pipeline.client, pipeline.queue.url, messages, None)
        expected = {mid: m.expected for mid, m in published.items()}
        receives = pipeline.plan.source_queue.max_receive_count or 1
        visibility = int(pipeline.plan.source_queue.attributes["VisibilityTimeout"])

        # WHEN the mapping polls until nothing is in flight (bounded in time)
        states, dead = settle(pipeline, published, ledger, seconds=receives * visibility + 60)

        offloaded = s3_client(pipeline.server.endpoint_url).list_objects_v2(Bucket=pipeline.payload_bucket)

    # THEN every message is in exactly its expected final state: none lost, none twice
    assert states == expected
    # (each upstream shape among them, expected to succeed: the handler ran for it)
    shaped = {m.label: states[mid] for mid, m in published.items() if m.label in SHAPE_LABELS}
    assert shaped == dict.fromkeys(SHAPE_LABELS, demo.SUCCEEDED)
    # AND the payload stays for the bucket's lifecycle rule: its message could come back
    assert offloaded["KeyCount"] == 1 and offloaded["Contents"][0]["Size"] > demo.OFFLOADED_TEXT_BYTES
    assert sum(ledger.invocations.values()) >= 2
    assert ledger.invocations["function_error"] == 0
    flaky = next(mid for mid, m in published.items() if m.label == "hello flaky")
    assert ledger.failures[flaky] == 1
    failing = next(mid for mid, m in published.items() if m.label == "hello fail")
    # AND the always-failing one was listed on every receive but its last, when it was quarantined with its error
    assert ledger.failures[failing] == receives - 1
    letter = dead[failing]
    assert letter.kind == "retries_exhausted"
    assert letter.receive_count == str(receives)
    assert "simulated failure on every receive" in (letter.reason or "")
    # AND each retry came back after its backoff (base x 2^(n-1), jittered down to half), not the visibility timeout
    env = pipeline.plan.function.environment
    base, cap = float(env["RETRY_BACKOFF_BASE_SECONDS"]), float(env["RETRY_BACKOFF_CAP_SECONDS"])
    times = ledger.failure_times[failing]
    visibility_seconds = float(pipeline.plan.source_queue.attributes["VisibilityTimeout"])
    slack = 5.0  # the emulated mapping's long poll plus one invocation on a loaded machine
    for attempt, (earlier, later) in enumerate(itertools.pairwise(times), start=1):
        ceiling = min(cap, base * 2 ** (attempt - 1))
        assert ceiling / 2 - 0.2 <= later - earlier <= min(ceiling + slack, visibility_seconds), (
            attempt,
            later - earlier,
        )


def test_an_async_handler_that_would_outlast_the_function_is_cut_off_before_its_timeout(
    local_template: Path, tmp_path: Path
):
    # GIVEN a batch holding a record whose async handler sleeps past the function's timeout
    results: list[BatchResult] = []
    with running_pipeline(local_template, tmp_path, on_batch=results.append) as pipeline:
        timeout_ms = pipeline.plan.function.timeout_seconds * 1000
        slow = {"event_id": "evt_slow", "event_type": "hello",
                "payload": {"name": "slow", "simulate": "slow", "delay_ms": timeout_ms + 2000}}  # fmt: skip
        [sent] = EventPublisher(pipeline.queue.url, pipeline.client).publish([slow])

        # WHEN the mapping invokes the function
        deadline = time.monotonic() + timeout_ms / 1000 + 30
        while not results and time.monotonic() < deadline:
            time.sleep(0.2)

        # THEN the handler was cancelled within the time reserve: the invocation returned before its
        # timeout, the record listed, not deleted, and still on the queue (a sync handler cannot be cut
        # off: the function would time out, and the whole batch come back; docs/design.md §4)
        assert results, "no invocation happened"
        assert results[0].reason == "partial"
        assert results[0].failed == (sent.message_id,)
        assert results[0].deleted == ()
        assert results[0].duration_seconds < timeout_ms / 1000
        attributes = pipeline.client.get_queue_attributes(
            QueueUrl=pipeline.queue.url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        assert int(attributes["ApproximateNumberOfMessagesNotVisible"]) == 1
        assert sent.ok


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def serving(command: list[str], env: dict[str, str], **popen: Any) -> tuple[subprocess.Popen[str], list[str]]:
    """Start the serve mode and read its output until it is ready for messages."""
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, **popen)  # fmt: skip
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if "Each batch is shown below" in line:
            break
    return process, lines


def test_serve_mode_stops_cleanly_on_ctrl_c(local_template: Path):
    # GIVEN `make local ARGS=--serve`, running
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'functions' / 'consumer'}", "COLUMNS": "400"}
    process, lines = serving([sys.executable, "-m", "local", "--template", str(local_template), "demo", "--serve"], env)
    output = "".join(lines)
    # AND it printed the queue, the DLQ's URL and ARN, and one-line publish and peek commands
    labels = {line.split("  ")[1].strip() for line in lines if line.startswith("  ") and not line.startswith("  AWS_")}
    assert {"queue", "DLQ", "DLQ ARN", "payloads"} <= labels
    commands = [line.strip() for line in lines if line.startswith("  AWS_ACCESS_KEY_ID=")]
    assert [command.split()[2].rsplit("/", 1)[1] for command in commands] == ["sqs-publish", "sqs-dlq"]
    # AND the publish command offloads large events to the payload bucket it names
    bucket = next(line.split()[1] for line in lines if line.startswith("  payloads "))
    assert f"--payload-bucket {bucket} " in commands[0]
    endpoint = next(word for word in output.split() if word.startswith("http://127.0.0.1:"))
    port = int(endpoint.split(":")[2].split("/")[0])
    assert _port_open(port)

    # WHEN it receives Ctrl-C
    process.send_signal(signal.SIGINT)
    remaining, _ = process.communicate(timeout=30)

    # THEN it exits 0 and leaves nothing listening
    assert process.returncode == 0, output + remaining
    assert "no process left behind" in remaining
    assert not _port_open(port)


def test_serve_through_make_shows_each_outcome_and_stops_on_sigterm_to_make(local_template: Path):
    # GIVEN `make local ARGS=--serve` started from a script, as CI or a test harness does
    command = ["make", "--no-print-directory", "local", "ARGS=--serve", f"LOCAL_TEMPLATE={local_template}"]
    process, lines = serving(command, {**os.environ, "COLUMNS": "400"}, start_new_session=True)
    assert process.stdout is not None
    output = "".join(lines)
    assert "send SIGTERM to make" in output
    endpoint = next(word for word in output.split() if word.startswith("http://127.0.0.1:"))
    queue_url = next(line.split()[1] for line in lines if line.strip().startswith("queue "))
    client = sqs_client(endpoint.split("/123456789012")[0])

    # WHEN a success, a copy of it and a message with an invalid payload arrive, one batch each
    success = {"event_id": "evt_serve_1", "event_type": "hello", "payload": {"name": "x"}}
    poison = {"event_id": "evt_serve_2", "event_type": "document.processed", "payload": {"document_id": ""}}
    for body in (success, success, poison):
        client.send_message(QueueUrl=queue_url, MessageBody=json.dumps(body))
        for line in process.stdout:
            lines.append(line)
            if "batch of" in line:
                break

    # AND make receives SIGTERM
    process.send_signal(signal.SIGTERM)
    remaining, _ = process.communicate(timeout=30)

    # THEN each batch line says what its record came to, and the pipeline stopped cleanly
    batches = [line.strip() for line in lines if "batch of" in line]
    assert batches[0].startswith("batch of 1: 1 succeeded, 0 duplicate, 0 listed for retry, 0 quarantined in ")
    assert batches[1].startswith("batch of 1: 0 succeeded, 1 duplicate, 0 listed for retry, 0 quarantined in ")
    assert batches[2].startswith(
        "batch of 1: 0 succeeded, 0 duplicate, 0 listed for retry, 1 quarantined (1 invalid_payload) in "
    )
    assert "no process left behind" in remaining, "".join(lines) + remaining
    assert process.returncode in (0, -signal.SIGTERM)  # make ends as its signal asks, once its child is done
