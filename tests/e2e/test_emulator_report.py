"""The emulator's REPORT lines tell the truth: the runtime's peak memory, its init and each invoke's duration;
each invocation's log slice knows the trace ids of its records.

The memory is checked against figures the emulator does not make: what an offloaded payload's parse holds,
measured in this process, and the runtime's resident memory as ``ps`` samples it during the invocation."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import tracemalloc
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from local.emulator import FunctionEmulator
from local.sqs_server import LOCAL_CREDENTIALS, SqsServer, s3_client
from local.template import FunctionSpec
from sqs_consumer.testing import events as sqs

pytestmark = pytest.mark.e2e

TRACE = "Root=1-6942a1b0-5f3c7e0a9b1d2c3e4f506172;Parent=53995c3f42cd8ad8;Sampled=1"
# A memory size far from what the runtime uses: the emulator's own line would say this.
MEMORY_MB = 1024
BUCKET = "payloads"
# The large payload: an offloaded document.processed event whose payload holds a field its model keeps
# (extra="allow"), a list of empty lists: the worst shape a parse makes of a text (about twenty times its
# size in memory), held while its record is handled.
LARGE_PAYLOAD_BYTES = 5_000_000
# How long the large batch's other record sleeps: the invocation lasts while ps samples it.
HOLD_MS = 600


def _document(size: int) -> bytes:
    text = sqs.body("document.processed", {"document_id": "doc-1", "blocks": []})
    lists = max(0, (size - len(text)) // 3)
    return text.replace('"blocks": []', '"blocks": [' + "[]," * lists + "[]]").encode()


def _held_mb(text: bytes) -> float:
    """What the parse of an offloaded payload holds (json.loads, as payloads are read), measured here."""
    tracemalloc.start()
    try:
        document = json.loads(text)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert document["event_type"] == "document.processed"
    return held / 1_048_576


def _tree_rss_kb(root: int) -> int:
    """The resident memory of every process below ``root``, as ``ps`` reads it (not the emulator's route)."""
    listing = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,rss="], capture_output=True, text=True, check=True)
    children: dict[int, list[int]] = defaultdict(list)
    rss: dict[int, int] = {}
    for line in listing.stdout.splitlines():
        pid, ppid, kb = (int(value) for value in line.split())
        children[ppid].append(pid)
        rss[pid] = kb
    total, pending = 0, list(children[root])
    while pending:
        pid = pending.pop()
        total += rss[pid]
        pending.extend(children[pid])
    return total


@contextmanager
def sampled_rss_kb(root: int) -> Iterator[list[int]]:
    """The resident memory of the processes below ``root``, sampled by ``ps`` while the block runs."""
    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(_tree_rss_kb(root))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        done.set()
        thread.join()


def _offloaded(key: str, size: int) -> dict[str, object]:
    return sqs.record(sqs.pointer_body(BUCKET, key), message_attributes=sqs.size_attribute(size))


def _fields(report: str) -> dict[str, str]:
    return dict(field.split(": ", 1) for field in report.strip().split("\t")[1:] if ": " in field)


def _ms(value: str) -> float:
    return float(value.removesuffix(" ms"))


@pytest.fixture
def emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # The emulator's own lines kept in the log too: the durations it measures are checked against them.
    monkeypatch.setenv("LOCAL_EMULATOR_LOG_LEVEL", "info")
    server = SqsServer()  # moto's S3, for the offloaded payloads
    s3 = s3_client(server.endpoint_url)
    s3.create_bucket(Bucket=BUCKET)
    environment = {"DLQ_URL": "http://127.0.0.1:9/123456789012/dlq", **LOCAL_CREDENTIALS,
                   "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": server.endpoint_url,
                   "PAYLOAD_BUCKET": BUCKET, "MAX_PAYLOAD_BYTES": str(2 * LARGE_PAYLOAD_BYTES)}  # fmt: skip
    spec = FunctionSpec("Function", "sqs_consumer.handler.lambda_handler", 10, MEMORY_MB)
    function = FunctionEmulator(spec, environment, log_path=tmp_path / "function-0.log")
    yield function, tmp_path / "function-0.log", s3
    function.stop()
    server.stop()


def test_report_lines_give_the_runtimes_peak_memory_init_and_invoke_durations(emulator):
    function, log_path, s3 = emulator
    small, large = _document(1_000), _document(LARGE_PAYLOAD_BYTES)
    s3.put_object(Bucket=BUCKET, Key="small", Body=small)
    s3.put_object(Bucket=BUCKET, Key="large", Body=large)
    held_mb = _held_mb(large)

    # WHEN two invocations run: a cold start with a small offloaded payload, then a warm one with a large
    # one and a record that sleeps, the runtime's resident memory sampled by ps meanwhile
    first = function.invoke(
        sqs.event(sqs.record(sqs.body("hello"), trace_header=TRACE), _offloaded("small", len(small)))
    )
    hold = sqs.record(sqs.body("hello", {"name": "hold", "simulate": "slow", "delay_ms": HOLD_MS}))
    with sampled_rss_kb(function._child.process.pid) as samples:
        second = function.invoke(sqs.event(_offloaded("large", len(large)), hold))
    assert first.payload == second.payload == {"batchItemFailures": []}
    assert first.log is not None and second.log is not None
    second.log.lines()  # its REPORT line is written
    text = log_path.read_text()
    reports = [_fields(line) for line in text.splitlines() if line.startswith("REPORT RequestId")]
    assert len(reports) == 2
    small_mb, large_mb = (int(report["Max Memory Used"].removesuffix(" MB")) for report in reports)

    # THEN the REPORT lines give the runtime's memory, not the memory size: the large payload's parse holds
    # over 100 MB here, and the second line's figure rises by at least that much; by less than 1.4 times it,
    # room for the allocator's rounding and the copies of the text its fetch and parse make (measured: 1.27)
    assert held_mb > 100
    assert small_mb < MEMORY_MB / 4
    assert held_mb <= large_mb - small_mb <= 1.4 * held_mb, (small_mb, large_mb, held_mb)
    # AND it is within 10% of the peak ps saw
    sampled_mb = max(samples) / 1024
    assert len(samples) >= 10
    assert abs(large_mb - sampled_mb) <= 0.10 * sampled_mb, (large_mb, sampled_mb)
    # AND the cold one's init and both durations are those the emulator measured (its INIT REPORT and
    # INVOKE RTDONE lines), not "Init Duration: 0.02 ms" with the init counted in the Duration
    [init_ms] = [float(v) for v in re.findall(r"INIT REPORT\(durationMs: ([0-9.]+)\)", text)]
    invokes_ms = [float(v) for v in re.findall(r"INVOKE RTDONE\(.*duration: ([0-9.]+)ms\)", text)]
    assert _ms(reports[0]["Init Duration"]) == pytest.approx(init_ms, abs=0.01)
    assert "Init Duration" not in reports[1]
    assert [_ms(report["Duration"]) for report in reports] == pytest.approx(invokes_ms, abs=0.01)
    # AND each invocation's slice knows its records' trace ids
    assert first.log.trace_ids == ("1-6942a1b0-5f3c7e0a9b1d2c3e4f506172",)
    assert second.log.trace_ids == ()
