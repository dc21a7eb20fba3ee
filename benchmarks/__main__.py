"""`python -m benchmarks [--quick]`: every figure beside its reference, as a ratio of medians.

1. per-record cost of the full pipeline vs a Powertools BatchProcessor that only validates;
2. cold start (fresh process: import + one batch of 10) vs the naive handler;
3. concurrency: 10 records whose async handler waits 50 ms, vs one at a time;
4. peak RSS while handling 10,000 records, vs the BatchProcessor reference;
5. exactly-once cost: batches of new events against an idempotency store with 25 ms of latency
   per call, with idempotency on and off (benchmarks.exactly_once);
6. cost per million messages (written to docs/cost.md by benchmarks.cost).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from benchmarks import cost, exactly_once
from sqs_consumer.models import HelloEvent
from sqs_consumer.observability import build_metrics, logger
from sqs_consumer.processing import BatchConsumer
from sqs_consumer.registry import EventRegistry, RecordInfo, Route
from sqs_consumer.routes import REGISTRY
from tests.support import sqs_events as sqs
from tests.support.fakes import FakeContext, FakeQuarantine

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / ".cache" / "bench" / "results.json"


def hello_batch(size: int) -> dict[str, Any]:
    return sqs.event(*(sqs.record(sqs.body("hello", {"name": f"user-{i}"})) for i in range(size)))


def reference_handler(event: dict[str, Any]) -> Any:
    processor = BatchProcessor(EventType.SQS)
    return process_partial_response(event, lambda record: HelloEvent.model_validate_json(record.body), processor, None)


def median_seconds(action: Callable[[], Any], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def per_record(size: int, repeats: int) -> tuple[float, float]:
    """Microseconds per record: ours (logs at INFO, EMF metrics), the reference.

    The two alternate, so drift on a noisy machine hits both alike. The garbage collector
    stays on, as in Lambda (it is part of what a batch costs); a full collection runs between
    samples every so often so that neither inherits the other's garbage.
    """
    consumer = BatchConsumer(REGISTRY, FakeQuarantine(), metrics=build_metrics("Bench", "bench"))
    event = hello_batch(size)
    ours: list[float] = []
    reference: list[float] = []
    with redirect_stdout(io.StringIO()):  # EMF documents; the logger's stream is swapped in main()
        for repeat in range(repeats):
            if repeat % 50 == 0:
                gc.collect()
            for samples, action in ((ours, lambda: consumer.handle(event, FakeContext())),
                                    (reference, lambda: reference_handler(event))):  # fmt: skip
                started = time.perf_counter()
                action()
                samples.append(time.perf_counter() - started)
    return statistics.median(ours) / size * 1e6, statistics.median(reference) / size * 1e6


COLD_START = """
import time, json, os, sys, io
started = time.perf_counter()
import {module} as handler_module
event = json.loads(os.environ["BENCH_EVENT"])
class Context:
    function_name = "bench"; memory_limit_in_mb = 256; aws_request_id = "r"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    def get_remaining_time_in_millis(self): return 30000
out = sys.stdout; sys.stdout = io.StringIO()
handler_module.lambda_handler(event, Context())
sys.stdout = out
print((time.perf_counter() - started) * 1000)
"""


def cold_start(module: str, runs: int) -> float:
    """Median milliseconds for a fresh process to import ``module`` and handle a batch of 10."""
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}:{ROOT / 'functions' / 'consumer'}",
        "BENCH_EVENT": json.dumps(hello_batch(10)),
        "DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/bench-dlq",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_METRICS_NAMESPACE": "Bench",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }
    samples = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", COLD_START.format(module=module)],
            env=env, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        samples.append(float(out.strip().splitlines()[-1]))
    return statistics.median(samples)


def concurrency(repeats: int) -> tuple[float, float]:
    """Milliseconds for 10 records whose async handler waits 50 ms: bounded concurrency, one at a time."""

    async def wait(event: HelloEvent, record: RecordInfo) -> None:
        await asyncio.sleep(0.05)

    registry = EventRegistry([Route(HelloEvent, wait)])
    event = hello_batch(10)
    with redirect_stdout(io.StringIO()):
        together = BatchConsumer(registry, FakeQuarantine(), max_concurrent_records=10)
        one_by_one = BatchConsumer(registry, FakeQuarantine(), max_concurrent_records=1)
        ours = median_seconds(lambda: together.handle(event, FakeContext()), repeats)
        serial = median_seconds(lambda: one_by_one.handle(event, FakeContext()), max(1, repeats // 3))
    return ours * 1000, serial * 1000


PEAK_RSS = """
import io, json, resource, sys
sys.path[:0] = {paths!r}
from benchmarks.__main__ import hello_batch, reference_handler
from sqs_consumer.processing import BatchConsumer
from sqs_consumer.routes import REGISTRY
from sqs_consumer.observability import build_metrics, logger
from tests.support.fakes import FakeContext, FakeQuarantine
logger.registered_handler.setStream(io.StringIO())
import tracemalloc
event = hello_batch({size})
out = sys.stdout; sys.stdout = io.StringIO()
tracemalloc.start()
if {ours}:
    BatchConsumer(REGISTRY, FakeQuarantine(), metrics=build_metrics("B", "b")).handle(event, FakeContext())
else:
    reference_handler(event)
handling_peak = tracemalloc.get_traced_memory()[1] / 2**20
tracemalloc.stop()
sys.stdout = out
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, handling_peak)
"""


def peak_rss(size: int, ours: bool) -> tuple[float, float]:
    """Peak RSS (MiB) of a process that handles a batch of ``size``, and the peak of Python
    allocations (tracemalloc, MiB) made while handling it."""
    code = PEAK_RSS.format(paths=[str(ROOT), str(ROOT / "functions" / "consumer")], size=size, ours=ours)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    rss, handling = out.strip().splitlines()[-1].split()
    return float(rss), float(handling)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} {platform.machine()}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few repeats: checks that the benchmarks run")
    args = parser.parse_args(argv)
    quick = args.quick
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(io.StringIO())  # logs are formatted, as in Lambda, but not shown

    rows: list[tuple[str, float, float, str, str]] = []
    reference = "Powertools BatchProcessor + model_validate_json"
    measured: dict[int, tuple[float, float]] = {}
    for size, repeats in ((10, 30 if quick else 2000), (100, 5 if quick else 300), (10_000, 1 if quick else 7)):
        measured[size] = per_record(size, repeats)
    rows.append(("per-record cost, batch of 10 (us)", *measured[10], "<= 2.0", reference))
    rows.append(("per-record cost, batch of 10,000 (us)", *measured[10_000], "<= 1.5", reference))
    runs = 2 if quick else 11
    ours_cold = cold_start("sqs_consumer.handler", runs)
    naive_cold = cold_start("benchmarks.naive_handler", runs)
    naive = "boto3 client, Logger/Metrics/Tracer at import, parser models"
    rows.append(("cold start: import + batch of 10 (ms)", ours_cold, naive_cold, "<= 0.5", naive))
    together, serial = concurrency(3 if quick else 15)
    rows.append(
        ("10 records x 50 ms async wait (ms)", together, 50.0, "<= 1.3", f"50 ms; one at a time: {serial:.0f} ms")
    )
    size = 1_000 if quick else 10_000
    (rss_ours, alloc_ours), (rss_ref, alloc_ref) = peak_rss(size, ours=True), peak_rss(size, ours=False)
    rows.append((f"peak RSS, batch of {size:,} (MiB)", rss_ours, rss_ref, "report", "BatchProcessor reference process"))
    rows.append(
        ("  peak allocated while handling (MiB)", alloc_ours, alloc_ref, "report", "tracemalloc, same processes")
    )

    print(f"Machine: {machine()}")
    print(f"{'figure':<40} {'ours':>9} {'reference':>10} {'ratio':>6}  {'target':<7} reference")
    for name, ours, ref, target, what in rows:
        print(f"{name:<40} {ours:>9.2f} {ref:>10.2f} {ours / ref:>6.2f}  {target:<7} {what}")
    print()
    print(exactly_once.render(exactly_once.run(latency_ms=25.0, repeats=2 if quick else 9)))
    cpu_ms_per_record = {size: measured[size][0] / 1000 for size in (10, 100)}
    print()
    print("Cost per million messages (Lambda arm64, 256 MB, + SQS requests):")
    print(cost.render_summary(cost.scenarios(cpu_ms_per_record)))
    print(
        "Seed worker on Fargate, per month: "
        + ", ".join(f"{k}: ${v:,.2f}" for k, v in cost.seed_worker_monthly().items())
    )
    if not quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({"machine": machine(), "rows": rows}, indent=2))
        cost.write_document(cpu_ms_per_record, machine())
        print(f"Wrote {cost.DOCUMENT.relative_to(ROOT)} and {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
