"""Cold start and per-record cost as Lambda runs the function: the built asset, read-only, under 3.14.

- **Ours**: the asset ``cdk synth`` builds (infra/packaging.py, bytecode included), built for
  this machine's CPU so its compiled wheels load here, copied into a read-only folder, run
  by CPython 3.14 with no bytecode writing, with the ``dev`` stage's environment: idempotency
  on, the table answered by a DynamoDB stub on loopback.
- **Naive reference**, deployed as users deploy it: benchmarks/naive_handler.py (Logger, Metrics,
  Tracer and a boto3 client at import) with Powertools, pydantic and the X-Ray SDK bundled
  without bytecode, and boto3 from a folder compiled as the runtime's ``/var/runtime`` is.
- Cold start: fresh processes, the two interleaved, medians. A process imports the handler and
  handles a batch of 10, timed inside it from before the import to the response: what Lambda bills
  beyond its own bare interpreter start. (The process's wall time would add the interpreter's exit,
  some 200 ms here for either handler, which Lambda never runs: it freezes the environment.)
- Per record: the entry point ``lambda_handler`` against a bare Powertools ``BatchProcessor``
  parsing the same contract, on events shaped as ``sam local generate-event sqs receive-message``
  prints them (idempotency off: the store's cost is benchmarks/exactly_once.py's figure).

    python -m benchmarks.lambda_runtime [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from infra import runtime_python
from infra.function_environment import HANDLER, function_environment
from infra.packaging import CACHE_DIR, Target, build_function_asset, install_wheels, pins
from infra.settings import StackSettings

ROOT = Path(__file__).resolve().parents[1]
PROBE = Path(__file__).with_name("runtime_probe.py")
NAIVE = Path(__file__).with_name("naive_handler.py")
BENCH_CACHE = CACHE_DIR.parent / "bench"
TABLE = "bench-idempotency"
DLQ_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/bench-dlq"
# What the naive deployment bundles beside its handler, and what the runtime provides.
NAIVE_BUNDLED = ("aws-lambda-powertools", "pydantic", "pydantic-core", "annotated-types", "typing-extensions",
                 "typing-inspection", "jmespath", "aws-xray-sdk", "wrapt")  # fmt: skip
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3")


@dataclass(frozen=True)
class ColdStart:
    """Medians, in ms, of import + first batch of 10 in a fresh process, timed inside it."""

    ours_ms: float
    naive_ms: float
    # Ours with the stage's tracing on, a sampled invocation, and a stand-in X-Ray daemon on loopback.
    traced_ms: float | None = None
    # Subsegments that daemon received per traced run (one per handler call: 10).
    subsegments: int | None = None


@dataclass(frozen=True)
class PerRecord:
    size: int
    ours_us: float
    bare_us: float


def sam_event(size: int) -> dict[str, Any]:
    """``sam local generate-event sqs receive-message``'s record, once per message, with contract bodies."""
    records = []
    for i in range(size):
        body = json.dumps({"event_id": f"evt_{uuid.uuid4().hex[:12]}", "event_type": "hello",
                           "occurred_at": "2026-11-28T10:00:00Z", "payload": {"name": f"user-{i}"}})  # fmt: skip
        records.append({
            "messageId": str(uuid.uuid4()),
            "receiptHandle": "MessageReceiptHandle",
            "body": body,
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1523232000000",
                           "SenderId": "123456789012", "ApproximateFirstReceiveTimestamp": "1523232000001"},
            "messageAttributes": {},
            "md5OfBody": hashlib.md5(body.encode()).hexdigest(),  # SQS's own checksum
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:MyQueue",
            "awsRegion": "us-east-1",
        })  # fmt: skip
    return {"Records": records}


class _StoreStub(BaseHTTPRequestHandler):
    """DynamoDB's answers for new events: conditional writes succeed, nothing left unprocessed."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        operation = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
        self.server.calls.append(operation)  # type: ignore[attr-defined]
        body = json.dumps({"UnprocessedItems": {}} if operation == "BatchWriteItem" else {}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def store_on_loopback() -> Iterator[tuple[str, list[str]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StoreStub)
    server.calls = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.calls  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def xray_daemon_on_loopback() -> Iterator[tuple[str, Callable[[], list[bytes]]]]:
    """A stand-in X-Ray daemon: its UDP address, and the datagrams it received so far."""
    received: list[bytes] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.settimeout(0.2)
        stop = threading.Event()

        def listen() -> None:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    received.append(listener.recv(65_536))

        thread = threading.Thread(target=listen, daemon=True)
        thread.start()
        try:
            yield "{}:{}".format(*listener.getsockname()), lambda: list(received)
        finally:
            stop.set()
            thread.join()


def _pins(names: tuple[str, ...]) -> list[str]:
    pinned = pins(ROOT / "requirements.txt", ROOT / "requirements-dev.txt")
    return [pinned[name] for name in names]


def naive_deployment(python: list[str], target: Target) -> tuple[Path, Path]:
    """The naive reference's task folder (no bytecode) and the runtime's boto3 folder (compiled)."""
    bundled, provided = _pins(NAIVE_BUNDLED), _pins(RUNTIME_PROVIDED)
    key = hashlib.sha256("\n".join([*bundled, *provided, target.platform_tag, NAIVE.read_text()]).encode())
    folder = BENCH_CACHE / f"naive-{key.hexdigest()[:12]}"
    task, runtime = folder / "task", folder / "runtime"
    if not (folder / ".complete").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        install_wheels(target, task, "--no-deps", *bundled)
        shutil.copy(NAIVE, task / NAIVE.name)
        install_wheels(target, runtime, "--no-deps", *provided)
        subprocess.run([*python, "-m", "compileall", "-q", "-j", "0", str(runtime)], check=True,
                       capture_output=True)  # fmt: skip
        (folder / ".complete").write_text("ok\n")
    return task, runtime


@contextmanager
def read_only_copy(source: Path) -> Iterator[Path]:
    """``source`` copied to a folder nothing can write to, as ``/var/task`` is."""
    with tempfile.TemporaryDirectory(prefix="var-task-") as scratch:
        task = Path(scratch) / "task"
        shutil.copytree(source, task, ignore=shutil.ignore_patterns(".complete"))
        for path in sorted(task.rglob("*"), reverse=True):
            path.chmod(0o555 if path.is_dir() else 0o444)
        task.chmod(0o555)
        try:
            yield task
        finally:
            for path in [task, *task.rglob("*")]:
                path.chmod(0o755 if path.is_dir() else 0o644)


def lambda_environment(python_path: list[Path], extra: dict[str, str]) -> dict[str, str]:
    """What Lambda sets for a function, plus ``extra``; nothing inherited from this shell but PATH."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join(str(path) for path in python_path),
        "PYTHONDONTWRITEBYTECODE": "1",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": str(python_path[0]),
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": "consumer",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_FORMAT": "JSON",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.14",
        "AWS_ACCESS_KEY_ID": "ASIABENCHMARK",
        "AWS_SECRET_ACCESS_KEY": "benchmark",
        "AWS_SESSION_TOKEN": "benchmark",
        "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        **extra,
    }


def dev_settings() -> StackSettings:
    return StackSettings.for_stage("dev", json.loads((ROOT / "cdk.json").read_text())["context"]["stages"])


def function_lambda_environment(task: Path, endpoint: str) -> dict[str, str]:
    """The ``dev`` stage's function environment in Lambda, AWS endpoints on ``endpoint`` (loopback)."""
    return lambda_environment([task], {
        **function_environment(dev_settings(), DLQ_URL, TABLE),
        "AWS_ENDPOINT_URL_DYNAMODB": endpoint, "AWS_ENDPOINT_URL_SQS": endpoint,
    })  # fmt: skip


def run_probe(python: list[str], *arguments: str, env: dict[str, str]) -> dict[str, Any]:
    """Run runtime_probe.py with ``arguments`` under ``python``; the figures it prints."""
    command = [*python, str(PROBE), *arguments]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(arguments)} failed:\n{result.stdout}\n{result.stderr}")
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def measure(runs: int, sizes: tuple[tuple[int, int], ...]) -> tuple[ColdStart, list[PerRecord], list[str]]:
    """Cold starts (``runs`` each, interleaved) and per-record figures for each (size, repeats)."""
    python = runtime_python.install()
    target = Target.host()
    asset = build_function_asset(target)
    naive_task, naive_runtime = naive_deployment(python, target)
    settings = dev_settings()
    with tempfile.TemporaryDirectory(prefix="bench-events-") as scratch, store_on_loopback() as (endpoint, calls), \
            read_only_copy(asset) as task, read_only_copy(naive_task) as naive:  # fmt: skip
        cold_event = Path(scratch) / "cold.json"
        cold_event.write_text(json.dumps(sam_event(10)))
        ours_env = function_lambda_environment(task, endpoint)
        naive_env = lambda_environment([naive, naive_runtime], {
            "POWERTOOLS_SERVICE_NAME": settings.service_name, "POWERTOOLS_METRICS_NAMESPACE": "Naive",
            "AWS_ENDPOINT_URL_SQS": endpoint,
        })  # fmt: skip
        ours: list[float] = []
        naive_samples: list[float] = []
        traced: list[float] = []
        with xray_daemon_on_loopback() as (daemon, received):
            traced_env = {**ours_env, "TRACING": "true", "AWS_XRAY_DAEMON_ADDRESS": daemon}
            probes = [(ours, HANDLER, ours_env), (naive_samples, "naive_handler.lambda_handler", naive_env),
                      (traced, HANDLER, traced_env)]  # fmt: skip
            for run in range(runs):
                # Each takes each place in turn: a run right after another's was seen to be slower.
                for samples, handler, env in probes[run % 3 :] + probes[: run % 3]:
                    samples.append(run_probe(python, "cold", handler, str(cold_event), env=env)["ms"])
            subsegments = len(received()) // runs
        store_calls = sorted(set(calls))
        cold = ColdStart(statistics.median(ours), statistics.median(naive_samples), statistics.median(traced),
                         subsegments)  # fmt: skip
        no_store = {key: value for key, value in ours_env.items() if "IDEMPOTENCY" not in key}
        per_record: list[PerRecord] = []
        for size, repeats in sizes:
            event_file = Path(scratch) / f"batch-{size}.json"
            event_file.write_text(json.dumps(sam_event(size)))
            figures = run_probe(python, "per-record", HANDLER, str(event_file), str(repeats), env=no_store)
            per_record.append(PerRecord(size, figures["ours_us"], figures["bare_us"]))
    return cold, per_record, store_calls


def render(cold: ColdStart, per_record: list[PerRecord], store_calls: list[str]) -> str:
    lines = [
        "As Lambda runs it (built asset, read-only, CPython 3.14, no bytecode writing):",
        f"{'figure':<50} {'ours':>9} {'reference':>10} {'ratio':>6}  target",
        f"{'cold start: import + batch of 10, idempotency on (ms)':<50} {cold.ours_ms:>9.0f} {cold.naive_ms:>10.0f} "
        f"{cold.ours_ms / cold.naive_ms:>6.2f}  <= 0.5",
    ]
    if cold.traced_ms is not None:
        name, ratio = "cold start, tracing on (ms)", cold.traced_ms / cold.naive_ms
        lines.append(f"{name:<50} {cold.traced_ms:>9.0f} {cold.naive_ms:>10.0f} {ratio:>6.2f}  <= 0.5  "
                     f"({cold.subsegments} subsegments a batch)")  # fmt: skip
    for row in per_record:
        target = "<= 2.0" if row.size <= 10 else "<= 1.5"
        name = f"per record, entry point, batch of {row.size:,} (us)"
        lines.append(f"{name:<50} {row.ours_us:>9.2f} {row.bare_us:>10.2f} {row.ours_us / row.bare_us:>6.2f}  {target}")
    lines.append(
        "Cold start reference: naive handler (Logger, Metrics, Tracer, boto3 client at import), bundled without "
        f"bytecode, boto3 from the runtime's precompiled folder. Store calls: {', '.join(store_calls) or 'none'}."
    )
    lines.append("Per-record reference: bare BatchProcessor parsing the same contract; SAM-shaped events.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lambda_runtime", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few runs: checks that the benchmark runs")
    args = parser.parse_args(argv)
    sizes = ((10, 50), (10_000, 1)) if args.quick else ((10, 3000), (10_000, 25))
    cold, per_record, store_calls = measure(2 if args.quick else 15, sizes)
    print(render(cold, per_record, store_calls))
    return 0


if __name__ == "__main__":
    sys.exit(main())
