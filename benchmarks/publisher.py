"""Publisher throughput: messages per second from one process, beside a plain boto3 loop, 25 ms per call.

Both send the same JSON-lines events through a real botocore SQS client (serialization, signing,
HTTP/1.1 with keep-alive) to an SQS-compatible endpoint on 127.0.0.1 (benchmarks/sqs_responder.py)
that answers each call after ``latency``, as SQS across a network does. The plain loop sends
``SendMessageBatch`` calls of 10, one after the other, without validation; ours validates each event
and keeps ``concurrency`` requests in flight. Each runs in a fresh process, which reports its peak
RSS (VmHWM) and its RSS before sending. Then a small run with every 20th event above the queue's
maximum checks that each offloaded event reached S3 and each event reached SQS.

    python -m benchmarks.publisher [--events 20000] [--latency-ms 25]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local.processes import LOOPBACK, ChildProcess, free_port, wait_for_port
from publisher.dispatch import DEFAULT_CONCURRENCY

if TYPE_CHECKING:
    # benchmarks.report imports the CDK app's modules: not in the measured processes.
    from benchmarks.report import Verdict

ROOT = Path(__file__).resolve().parents[1]
LATENCY_MS = 25.0
MAX_MESSAGE_BYTES = 262_144
QUEUE_URL = "http://{endpoint}/123456789012/bench-events"
RATE_TARGET = ">= 3000"
# Producer scale: long enough that opening the connections and starting the threads is not the figure.
EVENTS = 20_000
PLAIN_EVENTS = 5_000
RATIO_TARGET = ">= 8"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass(frozen=True)
class Run:
    events: int
    sent: int
    seconds: float
    peak_rss_mib: float
    base_rss_mib: float

    @property
    def rate(self) -> float:
        return self.sent / self.seconds


@dataclass(frozen=True)
class Figures:
    ours: Run
    plain: Run
    latency_ms: float
    concurrency: int
    offloaded: int  # events above the queue's maximum in the offload check
    objects: int  # objects the endpoint took for them
    missing: int  # events of the offload check not taken by SQS, plus offloaded ones not stored


def documents(count: int, large_every: int = 0) -> Iterator[str]:
    """Hello events as JSON lines, made as they are read; every ``large_every``-th one over 256 KiB."""
    for index in range(count):
        note = "x" * 300_000 if large_every and index % large_every == large_every - 1 else "y" * 200
        yield json.dumps({"event_id": f"evt_{index}", "event_type": "hello", "payload": {"name": "n", "note": note}})


def _memory() -> dict[str, float]:
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {name: int(status[name].split()[0]) / 1024 for name in ("VmRSS", "VmHWM") if name in status}


def _client(service: str, endpoint: str, concurrency: int | None) -> Any:
    """Ours: the clients sqs-publish makes (publisher.client.client_config); the plain loop: boto3's defaults."""
    import boto3

    from publisher.client import client_config

    config = client_config(concurrency) if concurrency else None
    make: Any = boto3.session.Session().client
    return make(service, endpoint_url=f"http://{endpoint}", config=config)


def child(arm: str, endpoint: str, count: int, concurrency: int) -> dict[str, float]:
    """One arm in this process: the time to send ``count`` events, what was sent, and the memory."""
    from publisher.client import EventPublisher
    from publisher.dispatch import Window

    sqs = _client("sqs", endpoint, concurrency if arm == "ours" else None)
    url = QUEUE_URL.format(endpoint=endpoint)
    sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["MaximumMessageSize"])  # a warm connection for both
    base = _memory()["VmRSS"]
    started = time.perf_counter()
    if arm == "ours":
        publisher = EventPublisher(url, sqs, window=Window(concurrency))
        sent = sum(result.ok for result in publisher.stream(documents(count)))
    else:
        sent, lines = 0, documents(count)
        while chunk := [line for _, line in zip(range(10), lines, strict=False)]:
            attribute = {"event_type": {"DataType": "String", "StringValue": "hello"}}
            entries: Any = [{"Id": str(i), "MessageBody": body, "MessageAttributes": attribute}
                            for i, body in enumerate(chunk)]  # fmt: skip
            sent += len(sqs.send_message_batch(QueueUrl=url, Entries=entries).get("Successful", []))
    seconds = time.perf_counter() - started
    return {"sent": sent, "seconds": seconds, "peak_rss_mib": _memory().get("VmHWM", 0.0), "base_rss_mib": base}


def _run_child(arm: str, endpoint: str, count: int, concurrency: int) -> Run:
    env = {
        **os.environ,
        **CREDENTIALS,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "functions" / "consumer")]),
    }
    command = [sys.executable, "-m", "benchmarks.publisher", "--child", arm, "--endpoint", endpoint,
               "--events", str(count), "--concurrency", str(concurrency)]  # fmt: skip
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    figures = json.loads(out.strip().splitlines()[-1])
    return Run(count, int(figures["sent"]), figures["seconds"], figures["peak_rss_mib"], figures["base_rss_mib"])


def _counts(endpoint: str) -> dict[str, int]:
    with urllib.request.urlopen(f"http://{endpoint}/counts", timeout=10) as response:
        counts: dict[str, int] = json.loads(response.read())
    return counts


def offload_check(endpoint: str, count: int = 200, large_every: int = 20) -> tuple[int, int, int]:
    """Publishes ``count`` events, every ``large_every``-th offloaded; (offloaded, objects stored, missing)."""
    from publisher.client import EventPublisher

    os.environ.update({name: os.environ.get(name, value) for name, value in CREDENTIALS.items()})
    before = _counts(endpoint)
    sqs, s3 = (_client(service, endpoint, DEFAULT_CONCURRENCY) for service in ("sqs", "s3"))
    publisher = EventPublisher(QUEUE_URL.format(endpoint=endpoint), sqs, payload_bucket="bench-payloads", s3=s3)
    results = publisher.publish(list(documents(count, large_every)))
    after = _counts(endpoint)
    offloaded = count // large_every
    objects, messages = after["objects"] - before["objects"], after["messages"] - before["messages"]
    missing = (count - messages) + (offloaded - objects) + sum(not result.ok for result in results)
    return offloaded, objects, missing


def run(
    quick: bool = False, latency_ms: float = LATENCY_MS, count: int = 0, concurrency: int = DEFAULT_CONCURRENCY
) -> Figures:
    """Starts the endpoint, runs each arm in its own process (ours three times, its median kept)."""
    count = count or (500 if quick else EVENTS)
    port = free_port()
    endpoint = f"{LOOPBACK}:{port}"
    command = [sys.executable, "-m", "benchmarks.sqs_responder", "--port", str(port), "--latency-ms", str(latency_ms),
               "--max-message-bytes", str(MAX_MESSAGE_BYTES)]  # fmt: skip
    paths = os.pathsep.join([str(ROOT), str(ROOT / "functions" / "consumer")])
    server = ChildProcess(command, env={**os.environ, "PYTHONPATH": paths})
    try:
        wait_for_port(port, server.process)
        runs = [_run_child("ours", endpoint, count, concurrency) for _ in range(1 if quick else 3)]
        ours = sorted(runs, key=lambda item: item.rate)[len(runs) // 2]
        # One call after another, the plain loop's rate is the same from its first call to its last: the
        # first PLAIN_EVENTS of the same events measure it in a quarter of the time.
        plain = _run_child("plain", endpoint, min(count, PLAIN_EVENTS), concurrency)
        offloaded, objects, missing = offload_check(endpoint)
    finally:
        server.stop()
    return Figures(ours, plain, latency_ms, concurrency, offloaded, objects, missing)


def render(figures: Figures) -> str:
    ours, plain = figures.ours, figures.plain
    lines = [
        f"Publisher: {figures.latency_ms:g} ms per SQS call (loopback endpoint), one process each:",
        f"{'':<34} {'messages/s':>11} {'sent':>7} {'of':>7} {'peak RSS (MiB)':>15} {'before sending':>15}",
    ]
    for name, item in ((f"ours, {figures.concurrency} requests in flight", ours), ("plain boto3 loop of 10", plain)):
        lines.append(f"{name:<34} {item.rate:>11,.0f} {item.sent:>7,} {item.events:>7,} {item.peak_rss_mib:>15.1f} "
                     f"{item.base_rss_mib:>15.1f}")  # fmt: skip
    lines.append(f"ratio {ours.rate / plain.rate:.1f}x; offload check: {figures.offloaded} events above the "
                 f"queue's maximum, {figures.objects} objects stored, {figures.missing} missing")  # fmt: skip
    return "\n".join(lines)


def verdicts(figures: Figures) -> list[Verdict]:
    from benchmarks.report import Verdict

    ours, plain = figures.ours, figures.plain
    measured = f"{ours.rate:,.0f} msg/s vs {plain.rate:,.0f} msg/s (plain loop)"
    stored = f"{figures.offloaded} offloaded, {figures.objects} stored"
    return [
        Verdict(f"publisher: messages/s, {figures.latency_ms:g} ms per call", ours.rate, RATE_TARGET, measured),
        Verdict("publisher vs a plain boto3 loop (ratio)", ours.rate / plain.rate, RATIO_TARGET, measured),
        Verdict("publisher: offloaded events missing from S3 or SQS", figures.missing, "<= 0", stored),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.publisher", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--events", type=int, default=EVENTS)
    parser.add_argument("--latency-ms", type=float, default=LATENCY_MS)
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    parser.add_argument("--child", choices=("ours", "plain"), help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.endpoint, args.events, args.concurrency)))
        return 0
    figures = run(latency_ms=args.latency_ms, count=args.events, concurrency=args.concurrency)
    print(render(figures))
    judged = verdicts(figures)
    for item in judged:
        print(f"{item.figure}: {item.value:,.2f} (target {item.target}) {item.outcome}")
    return 0 if all(item.outcome != "missed" for item in judged) else 1


if __name__ == "__main__":
    sys.exit(main())
