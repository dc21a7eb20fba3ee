"""`python -m benchmarks [--quick]`: every figure beside its reference, as a ratio of medians.

1-2. as Lambda runs it (benchmarks.lambda_runtime): the built asset, read-only, under CPython 3.14;
   cold start (fresh process: import + one batch of 10, idempotency on) vs the naive handler
   deployed as users deploy it, and per-record cost through the entry point on SAM-shaped events
   vs a bare Powertools BatchProcessor parsing the same contract;
3. concurrency: 10 records whose async handler waits 50 ms, vs one at a time;
4. peak RSS while handling 10,000 records, vs the BatchProcessor reference;
5. exactly-once cost: batches of new events against an idempotency store with 25 ms of latency
   per call, with idempotency on and off (benchmarks.exactly_once);
6. crash mid-batch: effects run twice after a SIGKILL and a redelivery, group commit beside
   Powertools' per-record idempotency and batch-end writes (benchmarks.crash_sweep; target 0 for ours);
7. cost per million messages (benchmarks.cost);
8. the publisher: messages per second from one process with 25 ms per SQS call, beside a plain boto3
   loop of SendMessageBatch calls, and the peak RSS of each (benchmarks.publisher);
9. offloaded payloads: the parse cost per payload byte by shape, and the handler's peak RSS on a batch of
   payloads at the dev stage's bound plus a poison one (benchmarks.parse_cost);
10. a rate limit of 20/s on the orders API held by 4 instances (processes) together, as the stand-in orders
   API counts the calls over a minute (benchmarks.rate_limit; about 70 s).

Ends with each target's verdict (met or missed) and exits 1 when one is missed (a --quick run is
not judged: too few repeats). The tables (performance.md, cost.md, results.json) go to
.cache/bench/; --docs (`make bench-docs`) writes performance.md and cost.md to docs/ instead.
"""

from __future__ import annotations

import argparse
import asyncio
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
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks import cost, crash_sweep, exactly_once, lambda_runtime, parse_cost, rate_limit, report
from benchmarks import publisher as publisher_bench
from benchmarks.references import hello_batch
from sqs_consumer.models import HelloEvent
from sqs_consumer.observability import logger
from sqs_consumer.pipeline import BatchConsumer
from sqs_consumer.pipeline.batch import RETURN_US_PER_RECORD, Batch
from sqs_consumer.pipeline.records import Item
from sqs_consumer.pipeline.settlement import Settlement
from sqs_consumer.registry import EventRegistry, RecordInfo, Route
from sqs_consumer.retry import NO_BACKOFF
from sqs_consumer.testing.fakes import FakeClock, FakeContext, InMemoryDLQ

ROOT = Path(__file__).resolve().parents[1]
# A --quick run checks that the rate-limit benchmark runs, not the rate it holds.
QUICK_RATE_SECONDS = 3.0


def median_seconds(action: Callable[[], Any], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def concurrency(repeats: int) -> tuple[float, float]:
    """Milliseconds for 10 records whose async handler waits 50 ms: bounded concurrency, one at a time."""

    async def wait(event: HelloEvent, record: RecordInfo) -> None:
        await asyncio.sleep(0.05)

    registry = EventRegistry([Route(HelloEvent, wait)])
    event = hello_batch(10)
    with redirect_stdout(io.StringIO()):
        together = BatchConsumer(registry, InMemoryDLQ(), max_concurrent_records=10)
        one_by_one = BatchConsumer(registry, InMemoryDLQ(), max_concurrent_records=1)
        ours = median_seconds(lambda: together.handle(event, FakeContext()), repeats)
        serial = median_seconds(lambda: one_by_one.handle(event, FakeContext()), max(1, repeats // 3))
    return ours * 1000, serial * 1000


def return_cost(repeats: int, size: int = 10_000) -> float:
    """Microseconds per record from the settlement's start to the response, for a batch of ``size``
    records all listed near the timeout (no time left for a line each, nor for a store or DLQ call):
    the cost the consumer keeps time for after its commit floor (pipeline/batch.py)."""
    clock, timed = FakeClock(), list[float]()

    def late(event: HelloEvent, record: RecordInfo) -> None:
        clock.advance(60)  # past the timeout: the records behind it are listed unstarted
        raise RuntimeError("transient")

    class TimedSettlement(Settlement):
        def settle(self, event: dict[str, Any], items: list[Item], batch: Batch) -> Any:
            started = time.perf_counter()
            try:
                return super().settle(event, items, batch)
            finally:
                timed.append(time.perf_counter() - started)

    consumer = BatchConsumer(EventRegistry([Route(HelloEvent, late)]), InMemoryDLQ(), timer=clock)
    consumer._settlement = TimedSettlement(consumer._registry, InMemoryDLQ(), NO_BACKOFF, None)
    event = hello_batch(size)
    with redirect_stdout(io.StringIO()):
        for _ in range(repeats):
            consumer.handle(event, FakeContext(remaining_ms=30_000, clock=clock))
    return statistics.median(timed) / size * 1e6


PEAK_RSS = """
import io, json, resource, sys
sys.path[:0] = {paths!r}
from benchmarks.references import hello_batch, reference_handler
from sqs_consumer.pipeline import BatchConsumer
from sqs_consumer.routes import REGISTRY
from sqs_consumer.observability import build_metrics, logger
from sqs_consumer.testing.fakes import FakeContext, InMemoryDLQ
logger.registered_handler.setStream(io.StringIO())
import tracemalloc
event = hello_batch({size})
out = sys.stdout; sys.stdout = io.StringIO()
tracemalloc.start()
if {ours}:
    BatchConsumer(REGISTRY, InMemoryDLQ(), metrics=build_metrics("B", "b")).handle(event, FakeContext())
else:
    reference_handler(event)
handling_peak = tracemalloc.get_traced_memory()[1] / 2**20
tracemalloc.stop()
sys.stdout = out
# VmHWM: this program's own peak (ru_maxrss would keep the parent's peak across fork and exec).
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
peak_kib = int(status["VmHWM"].split()[0]) if "VmHWM" in status else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(peak_kib / 1024, handling_peak)
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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="few repeats: checks that the benchmarks run")
    parser.add_argument("--template", type=Path, default=ROOT / "cdk.out" / "SqsConsumer-local.template.json",
                        help="the local stage's template, for the crash sweep (make bench synthesizes it)")  # fmt: skip
    parser.add_argument("--docs", action="store_true", help="write performance.md and cost.md to docs/")
    args = parser.parse_args(argv)
    if args.quick and args.docs:
        parser.error("--docs needs a full run, not --quick")
    return args


def main(argv: list[str] | None = None) -> int:
    """One run, figure after figure, each printed as it is measured; then the verdicts, and the tables."""
    args = parse_args(argv)
    quick = args.quick
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(io.StringIO())  # logs are formatted, as in Lambda, but not shown

    sizes = ((10, 50), (100, 10), (10_000, 1)) if quick else ((10, 3000), (100, 300), (10_000, 25))
    cold, per_record, store_calls = lambda_runtime.measure(2 if quick else 15, sizes)
    print(lambda_runtime.render(cold, [row for row in per_record if row.size != 100], store_calls))
    print()
    rows = in_process(quick)
    print()
    idempotency = exactly_once.run(latency_ms=25.0, repeats=2 if quick else 9)
    print(exactly_once.render(idempotency))
    print()
    sweeps = crash_sweep.run(args.template, 1 if quick else 8) if args.template.is_file() else []
    print(crash_sweep.render(sweeps) if sweeps else f"Crash sweep skipped: no local template at {args.template}")
    measured = {row.size: row for row in per_record}
    cpu_ms_per_record = {size: measured[size].ours_us / 1000 for size in (10, 100)}
    print_cost(cpu_ms_per_record)
    published = publisher_bench.run(quick)
    print(publisher_bench.render(published))
    print()
    parsing = parse_cost.run(quick)
    print(parse_cost.render(parsing))
    print()
    limited = rate_limit.measure(seconds=QUICK_RATE_SECONDS if quick else rate_limit.SECONDS)
    print(rate_limit.render(limited))
    print()
    judged = report.verdicts(cold, per_record, rows, idempotency) + crash_sweep.verdicts(sweeps)
    judged += publisher_bench.verdicts(published) + parse_cost.verdicts(parsing) + rate_limit.verdicts(limited)
    print(report.render_verdicts(judged))
    if quick:
        print("Quick run: too few repeats to judge; nothing written.")
        return 0
    documents = {
        "performance.md": report.render(machine(), cold, per_record, rows, idempotency)
        + parse_cost.markdown(parsing)
        + rate_limit.markdown(limited),
        "cost.md": cost.render_document(cpu_ms_per_record, machine()),
    }
    results = {"machine": machine(), "rows": rows, "cold_start": asdict(cold),
               "per_record": [asdict(row) for row in per_record],
               "verdicts": [{**asdict(item), "verdict": item.outcome} for item in judged]}  # fmt: skip
    written = write_tables(documents, results, report.DOCUMENT.parent if args.docs else report.OUTPUT)
    print("Wrote " + ", ".join(str(path.relative_to(ROOT)) for path in written))
    return 1 if any(item.outcome == report.MISSED for item in judged) else 0


def in_process(quick: bool) -> list[tuple[str, float, float, str, str]]:
    """Concurrency and peak memory beside their references, printed as a table; the rows, for the verdicts."""
    rows: list[tuple[str, float, float, str, str]] = []
    together, serial = concurrency(3 if quick else 15)
    rows.append(
        ("10 records x 50 ms async wait (ms)", together, 50.0, "<= 1.3", f"50 ms; one at a time: {serial:.0f} ms")
    )
    rows.append(("return per listed record, 10,000 (us)", return_cost(3 if quick else 15), float(RETURN_US_PER_RECORD),
                 "<= 0.5", "time the consumer keeps a record at one vCPU"))  # fmt: skip
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
    return rows


def print_cost(cpu_ms_per_record: dict[int, float]) -> None:
    print()
    print("Cost per million messages (Lambda arm64, 256 MB, + SQS requests):")
    print(cost.render_summary(cost.scenarios(cpu_ms_per_record)))
    print(
        "Seed worker on Fargate, per month: "
        + ", ".join(f"{k}: ${v:,.2f}" for k, v in cost.seed_worker_monthly().items())
    )
    print()


def write_tables(documents: dict[str, str], results: dict[str, Any], directory: Path) -> list[Path]:
    """The run's documents into ``directory``; its raw figures always into .cache/bench/results.json."""
    directory.mkdir(parents=True, exist_ok=True)
    report.OUTPUT.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in documents.items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    raw = report.OUTPUT / "results.json"
    raw.write_text(json.dumps(results, indent=2))
    return [*written, raw]


if __name__ == "__main__":
    sys.exit(main())
