"""`python -m benchmarks.rate_limit [--seconds 60] [--rate 20] [--instances 4]`: a rate limit on the orders
API held by several instances of the function together, as the orders API sees it.

- moto's server (local/moto_server.py) on loopback holds the queue, its DLQ and the idempotency table, where
  the instances lease their tokens; the stand-in orders API (local/orders_api.py) on loopback records
  each POST it receives with its arrival time.
- Each instance is a separate process, as Lambda's execution environments are, running the entry point
  (``sqs_consumer.handler.lambda_handler``) on the events it is given, one at a time, configured by the
  environment the stack gives the function (infra/function_environment.py): the ``dev`` stage with a rate
  limit of ``rate`` on ``orders-api`` (burst: the stage's default, one second of the rate), breakers on.
- The emulated event source mapping (local/event_source.py) polls the queue with one worker per instance
  and settles each batch as Lambda does: what the response does not list is deleted. A record over the
  rate is listed with a delay by the consumer and comes back from the queue after it, as it would in AWS.
  A producer thread sends ``order.placed`` events at twice the rate while fewer than ``BACKLOG`` wait, so
  the instances never run dry and moto's queue, whose receives slow down as it grows, stays small.

The figure: the POSTs the stand-in received in the ``seconds`` after the first one, less the bucket's
burst (which the first leases may take at once), divided by ``seconds``. Target: the rate ± 10 %.
Also printed: the calls per second in each sixth of the window, the events POSTed more than once (0: the
idempotency store held), the records listed and each instance's share, and the DynamoDB calls the
instances made per 10 records that reached the orders API, by what they were for (claims and
completions, breaker reads, token leases and the leases that lost a race to another instance).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local.emulator import Invocation
from local.event_source import EventSourceMapping
from local.orders_api import OrdersApi
from local.sqs_server import Queue, SqsServer, dynamodb_client
from local.template import MappingSpec

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from benchmarks.report import Verdict
    from infra.settings import StackSettings

ROOT = Path(__file__).resolve().parents[1]
LOG_DIR = ROOT / ".cache" / "bench" / "rate-limit"
DEPENDENCY = "orders-api"
RATE = 20.0
INSTANCES = 4
SECONDS = 60.0
TOLERANCE = 0.1  # the issue's ± 10 %
SLICES = 6
SECTION = "## A rate limit held by several instances"
# The exactly-once cost with the breaker closed: claims and completions (whose round trips benchmarks/exactly_once.py
# holds to 4 per batch of 10), and the breakers' reads; the tokens' calls are the rate limit's own, shown apart.
EXACTLY_ONCE_CALLS = ("idempotency", "breakers")
TABLE = "bench-idempotency"
QUEUE = "bench-orders"
WAIT_SECONDS = 1
BACKLOG = 200
# How long the instances may take to make their first call (imports, clients) before the run ends without it.
START_SECONDS = 60.0
# What each instance runs: the entry point on each event read from stdin, its answer and the DynamoDB calls
# it made on the stdout it started with (the function's own output, logs and metrics, goes to stderr).
CHILD = r"""
import json, os, sys, time, uuid
answers = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
import botocore.client

store_calls = {}
make_api_call = botocore.client.BaseClient._make_api_call

def kind(params):
    text = repr(params)
    return "tokens" if "#tokens" in text else "breakers" if "dependency#" in text else "idempotency"

def counted(self, operation, params):
    if self.meta.service_model.service_name != "dynamodb":
        return make_api_call(self, operation, params)
    name = kind(params)
    store_calls[name] = store_calls.get(name, 0) + 1
    try:
        return make_api_call(self, operation, params)
    except Exception:
        store_calls[name + " refused"] = store_calls.get(name + " refused", 0) + 1
        raise

botocore.client.BaseClient._make_api_call = counted
from sqs_consumer import handler

class Context:
    function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
    memory_limit_in_mb = int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:" + function_name

    def __init__(self, timeout_ms):
        self.aws_request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + timeout_ms / 1000

    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.monotonic()) * 1000))

timeout_ms = int(sys.argv[1])
for line in sys.stdin:
    store_calls.clear()
    try:
        answer = {"response": handler.lambda_handler(json.loads(line), Context(timeout_ms))}
    except Exception as exc:
        answer = {"error": repr(exc)}
    answer["store_calls"] = store_calls
    answers.write(json.dumps(answer) + "\n")
    answers.flush()
"""


@dataclass(frozen=True)
class Figures:
    rate: float
    burst: int
    instances: int
    seconds: float
    calls: int  # POSTs received within the window: ``seconds`` from the first
    arrivals: list[float]  # every POST's arrival, seconds after the instances were started
    duplicates: int  # events POSTed more than once
    records: int  # records the instances were given
    listed: int  # of which listed (over the rate), to come back
    shares: list[int]  # records each instance handled (given, not listed)
    store_calls: dict[str, int]  # DynamoDB calls the instances made, by what for ("tokens refused": lost races)
    python: str

    @property
    def per_second(self) -> float:
        """Calls per second over the window, the burst left out."""
        return (self.calls - self.burst) / self.seconds

    @property
    def slices(self) -> list[float]:
        """Calls per second in each sixth of the window (the burst in the first)."""
        first, width = self.arrivals[0] if self.arrivals else 0.0, self.seconds / SLICES
        counts = Counter(int((at - first) // width) for at in self.arrivals if at - first < self.seconds)
        return [counts[index] / width for index in range(SLICES)]

    def per_10(self, *kinds: str) -> float:
        """Store calls of these kinds per 10 records that reached the orders API."""
        posted = len(self.arrivals) - self.duplicates
        return 10 * sum(self.store_calls.get(kind, 0) for kind in kinds) / posted if posted else math.inf

    @property
    def exactly_once_per_10(self) -> float:
        """The exactly-once cost with the breaker closed: claims and completions, and the breakers' reads."""
        return self.per_10(*EXACTLY_ONCE_CALLS)

    @property
    def token_bound(self) -> float:
        """The most calls the bucket allows by the last one: the burst, then the rate since the instances began."""
        return self.burst + self.rate * self.arrivals[-1] if self.arrivals else float(self.burst)


class Instance:
    """One execution environment: a process that runs the entry point on one event at a time."""

    def __init__(self, python: Sequence[str], env: dict[str, str], timeout_ms: int, log_path: Path) -> None:
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            [*python, "-c", CHILD, str(timeout_ms)], env=env, cwd=ROOT / "functions" / "consumer", text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
        )  # fmt: skip
        self.log_path = log_path
        self.records = self.listed = 0
        self.store_calls: Counter[str] = Counter()

    def invoke(self, event: dict[str, Any]) -> Invocation:
        assert self.process.stdin is not None and self.process.stdout is not None
        started = time.monotonic()
        self.process.stdin.write(json.dumps(event) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"an instance exited (code {self.process.poll()}); its log: {self.log_path}")
        answer = json.loads(line)
        response = answer.get("response")
        self.records += len(event["Records"])
        self.listed += len((response or {}).get("batchItemFailures", []))
        self.store_calls.update(answer["store_calls"])
        return Invocation(response, "error" in answer, time.monotonic() - started)

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


class _Probes:
    """Where the breakers' probes would be scheduled; none is, while the stand-in answers."""

    group_name = "bench-probes"
    scheduler_role_name = "bench-probe-invoker"


def stage(rate: float, instances: int, orders_url: str) -> StackSettings:
    """The dev stage of cdk.json with the rate limit on the orders API, and one mapping worker per instance."""
    from infra.settings import StackSettings

    stages = json.loads((ROOT / "cdk.json").read_text())["context"]["stages"]
    limits = {DEPENDENCY: {"rate_per_second": rate}}
    stages["dev"] = {**stages.get("dev", {}), "dependency_rate_limits": limits, "orders_api_url": orders_url,
                     "max_concurrency": max(2, instances)}  # fmt: skip
    return StackSettings.for_stage("dev", stages)


def instance_environment(settings: StackSettings, endpoint: str, dlq_url: str, paths: Sequence[str]) -> dict[str, str]:
    """What Lambda and the stack set for the function, its AWS endpoints on moto's server."""
    from benchmarks.lambda_runtime import lambda_environment
    from infra.function_environment import function_environment

    return lambda_environment([ROOT / "functions" / "consumer", *map(Path, paths)], {
        **function_environment(settings, dlq_url, TABLE, None, _Probes()),
        "AWS_ENDPOINT_URL": endpoint, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(settings.function_memory_mb),
        "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
    })  # fmt: skip


def create_resources(server: SqsServer, settings: StackSettings) -> tuple[Queue, str]:
    """The source queue (the stage's visibility timeout, redrive to the DLQ) and the idempotency table."""
    client = server.client()
    dlq_url = client.create_queue(QueueName=f"{QUEUE}-dlq")["QueueUrl"]
    dlq_arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": settings.max_receive_count})
    visibility = str(settings.visibility_timeout_seconds)
    created = client.create_queue(
        QueueName=QUEUE, Attributes={"VisibilityTimeout": visibility, "RedrivePolicy": redrive}
    )
    url = created["QueueUrl"]
    arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    dynamodb_client(server.endpoint_url).create_table(
        TableName=TABLE, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
    )  # fmt: skip
    return Queue(url, arn), dlq_url


def order_bodies(count: int, start: int) -> list[str]:
    from sqs_consumer.testing import events

    return [events.body("order.placed", {"order_id": f"ord-{n}", "customer_id": f"cus-{n % 97}",
                                         "lines": [{"sku": f"SKU-{n % 13}", "quantity": 1 + n % 3}]})
            for n in range(start, start + count)]  # fmt: skip


@contextmanager
def producing(client: SQSClient, queue_url: str, per_second: float) -> Iterator[None]:
    """Sends ``order.placed`` events in batches of 10 at ``per_second`` while fewer than ``BACKLOG`` are waiting,
    until the block ends."""
    stopping = threading.Event()

    def waiting() -> int:
        attributes = client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
        return int(attributes["Attributes"]["ApproximateNumberOfMessages"])

    def produce() -> None:
        sent = 0
        while not stopping.is_set():
            if waiting() < BACKLOG:
                entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(order_bodies(10, sent))]
                client.send_message_batch(QueueUrl=queue_url, Entries=entries)  # type: ignore[arg-type]
                sent += len(entries)
            stopping.wait(10 / per_second)

    thread = threading.Thread(target=produce, name="producer", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stopping.set()
        thread.join(30)


def measure(
    rate: float = RATE,
    instances: int = INSTANCES,
    seconds: float = SECONDS,
    *,
    python: tuple[Sequence[str], Sequence[str], str] | None = None,
    log_dir: Path = LOG_DIR,
) -> Figures:
    """One run: ``instances`` processes against a limit of ``rate`` on the orders API, for ``seconds`` from the
    stand-in's first call. ``python``: the interpreter, its extra paths and its name (default: CPython 3.14);
    the instances' and moto's logs go to ``log_dir``."""
    command, paths, version = python or runtime_interpreter()
    log_dir.mkdir(parents=True, exist_ok=True)
    api, server = OrdersApi().start(), SqsServer(log_dir / "moto.log")
    try:
        settings = stage(rate, instances, api.url)
        queue, dlq_url = create_resources(server, settings)
        env = instance_environment(settings, server.endpoint_url, dlq_url, paths)
        timeout_ms = settings.function_timeout_seconds * 1000
        started = time.time()
        fleet = [Instance(command, env, timeout_ms, log_dir / f"instance-{n}.log") for n in range(instances)]
        try:
            _run(server.client(), queue, settings, fleet, lambda: _window_over(api, seconds, started))
        finally:
            for instance in fleet:
                instance.stop()
    finally:
        server.stop()
        api.stop()
    return _figures(api, settings, fleet, started=started, seconds=seconds, python=version)


def _run(client: SQSClient, queue: Queue, settings: StackSettings, fleet: list[Instance],
         over: Callable[[], bool]) -> None:  # fmt: skip
    """The mapping feeds the fleet while the producer fills the queue, until ``over``."""
    rate = settings.dependency_rate_limits[DEPENDENCY].rate_per_second
    spec = MappingSpec(QUEUE, settings.batch_size, settings.max_batching_window_seconds, len(fleet), True)
    mapping = EventSourceMapping(client, queue, spec, fleet, wait_time_seconds=WAIT_SECONDS)
    with producing(client, queue.url, 2 * rate):
        mapping.start()
        try:
            while not over():
                if mapping.errors:
                    raise RuntimeError(f"the mapping failed: {mapping.errors[0]!r}") from mapping.errors[0]
                time.sleep(0.2)
        finally:
            mapping.stop()


def _window_over(api: OrdersApi, seconds: float, started: float) -> bool:
    """The window has passed since the first POST; or no POST came within ``START_SECONDS`` (a broken run ends)."""
    posts = [call.at for call in api.calls if call.method == "POST"]
    return time.time() >= (posts[0] if posts else started + START_SECONDS) + seconds


def _figures(api: OrdersApi, settings: StackSettings, fleet: list[Instance], *, started: float, seconds: float,
             python: str) -> Figures:  # fmt: skip
    from sqs_consumer.dependencies.rate import RateLimit

    limit = settings.dependency_rate_limits[DEPENDENCY]
    posts = sorted((call for call in api.calls if call.method == "POST"), key=lambda call: call.at)
    keys = Counter(call.idempotency_key for call in posts)
    first = posts[0].at if posts else started
    return Figures(
        rate=limit.rate_per_second, burst=RateLimit(limit.rate_per_second, limit.burst).capacity,
        instances=len(fleet), seconds=seconds, calls=sum(1 for call in posts if call.at < first + seconds),
        arrivals=[call.at - started for call in posts], duplicates=sum(n - 1 for n in keys.values()),
        records=sum(i.records for i in fleet), listed=sum(i.listed for i in fleet),
        shares=[i.records - i.listed for i in fleet],
        store_calls=dict(sum((i.store_calls for i in fleet), Counter[str]())), python=python,
    )  # fmt: skip


def runtime_interpreter() -> tuple[list[str], list[str], str]:
    """CPython 3.14 with the function's pinned dependencies (or this interpreter, said so): command, paths, name."""
    from benchmarks.parse_cost import interpreter

    command, env, version = interpreter()
    return command, env["PYTHONPATH"].split(os.pathsep), version


def target(rate: float) -> str:
    return f"{rate * (1 - TOLERANCE):g}-{rate * (1 + TOLERANCE):g}"


def render(figures: Figures) -> str:
    slices = ", ".join(f"{value:.1f}" for value in figures.slices)
    return "\n".join([
        f"Rate limit of {figures.rate:g}/s on {DEPENDENCY} (burst {figures.burst}), {figures.instances} instances "
        f"(processes, {figures.python}), as the stand-in orders API saw it:",
        f"  {figures.calls} POSTs in the {figures.seconds:g} s after the first; less the burst: "
        f"{figures.per_second:.2f}/s (target {target(figures.rate)})",
        f"  per {figures.seconds / SLICES:.3g} s of the window (the first with the burst): {slices} /s",
        f"  records given {figures.records}, listed over the rate {figures.listed}, events POSTed twice "
        f"{figures.duplicates}; records handled by each instance: {', '.join(map(str, figures.shares))}",
        f"  store calls per 10 records posted: exactly-once with the breaker closed {figures.exactly_once_per_10:.2f} "
        f"(claims and completions {figures.per_10('idempotency'):.2f}, breaker reads "
        f"{figures.per_10('breakers'):.2f}); token leases {figures.per_10('tokens'):.2f}, "
        f"{figures.per_10('tokens refused'):.2f} of them lost races",
    ])  # fmt: skip


def verdicts(figures: Figures) -> list[Verdict]:
    from benchmarks.report import Verdict

    name = f"rate limit {figures.rate:g}/s, {figures.instances} instances: calls/s over {figures.seconds:g} s"
    return [
        Verdict(name, figures.per_second, target(figures.rate), f"{figures.calls} calls, less the burst"),
        Verdict("rate limit run: events POSTed more than once", float(figures.duplicates), "<= 0",
                f"{len(figures.arrivals)} POSTs"),
        Verdict("rate limit run: exactly-once store calls per 10 records", figures.exactly_once_per_10, "report",
                "claims, completions, breaker reads"),
        Verdict("rate limit run: token lease calls per 10 records", figures.per_10("tokens"), "report",
                f"{figures.per_10('tokens refused'):.2f} of them lost races"),
    ]  # fmt: skip


def markdown(figures: Figures) -> str:
    """The rate-limit section of docs/performance.md."""
    from benchmarks.report import verdict

    rate = target(figures.rate)
    slices = ", ".join(f"{value:.1f}" for value in figures.slices)
    return "\n".join([
        "", SECTION, "",
        f"`python -m benchmarks.rate_limit` ({figures.python}): {figures.instances} instances of the function, each "
        "its own process running the entry point with the environment the stack gives it (the `dev` stage, "
        f"`dependency_rate_limits` of {figures.rate:g}/s on `{DEPENDENCY}`, burst by default, breakers on), fed by "
        "the emulated event source mapping from a queue in moto's server, which also holds the idempotency table "
        "and its token bucket; the stand-in orders API on loopback counts the POSTs it receives. Calls per second "
        f"= (POSTs in the {figures.seconds:g} s after the first - the burst of {figures.burst}) / {figures.seconds:g}. "
        f"Run on {dt.date.today().isoformat()}.",
        "", "| figure | measured | target | verdict |", "|---|---:|---|---|",
        f"| calls/s the orders API saw | {figures.per_second:.2f} | {rate} | {verdict(figures.per_second, rate)} |",
        f"| events POSTed more than once | {figures.duplicates} | <= 0 | {verdict(figures.duplicates, '<= 0')} |",
        f"| exactly-once store calls per 10 records (claims, completions, breaker reads) | "
        f"{figures.exactly_once_per_10:.2f} | report | |",
        f"| token lease calls per 10 records | {figures.per_10('tokens'):.2f} | report | |",
        "", f"Per {figures.seconds / SLICES:.3g} s of the window: {slices} calls/s (the first holds the burst). "
        f"{figures.listed} of {figures.records} records were listed over the rate and came back from the queue; "
        f"the instances handled {', '.join(map(str, figures.shares))} records each. Each instance counts its "
        f"DynamoDB calls by what they are for: claims and completions {figures.per_10('idempotency'):.2f} per 10 "
        f"records, breaker reads {figures.per_10('breakers'):.2f}, token leases {figures.per_10('tokens'):.2f} "
        f"({figures.per_10('tokens refused'):.2f} of them leases that lost a race to another instance). These are "
        "calls, not round trips: a batch's records end spread out here (their tokens come in blocks, a batch may "
        "wait for a second one, the calls to the orders API end at different times), so the group commit, one "
        "write in flight at a time, writes more often than for the exactly-once section's batches, whose handlers "
        "return together; the round trips a batch waits for are measured there.", "",
    ])  # fmt: skip


def write_section(figures: Figures, document: Path) -> None:
    """Replace this benchmark's section of ``document`` (docs/performance.md) with this run's, or append it."""
    text = document.read_text()
    heading = text.find("\n" + SECTION)
    if heading >= 0:
        following = text.find("\n## ", heading + 1)
        text = text[:heading] + (text[following:] if following >= 0 else "")
    document.write_text(text.rstrip("\n") + "\n" + markdown(figures))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rate_limit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--seconds", type=float, default=SECONDS, help="the window measured (default: %(default)s)")
    parser.add_argument("--rate", type=float, default=RATE, help="the limit, calls/s (default: %(default)s)")
    parser.add_argument("--instances", type=int, default=INSTANCES, help="processes (default: %(default)s)")
    parser.add_argument("--docs", action="store_true", help="write this section of docs/performance.md")
    args = parser.parse_args(argv)
    if not (math.isfinite(args.seconds) and math.isfinite(args.rate) and args.seconds > 0 and args.rate > 0
            and args.instances >= 1):  # fmt: skip
        parser.error("--seconds and --rate must be > 0, --instances >= 1")
    if args.docs and (args.seconds, args.rate, args.instances) != (SECONDS, RATE, INSTANCES):
        parser.error("--docs writes the figures of the default run: leave out --seconds, --rate and --instances")
    figures = measure(args.rate, args.instances, args.seconds)
    print(render(figures))
    from benchmarks.report import DOCUMENT, MISSED, render_verdicts

    if args.docs:
        write_section(figures, DOCUMENT)

    judged = verdicts(figures)
    print(render_verdicts(judged))
    return 1 if any(item.outcome == MISSED for item in judged) else 0


if __name__ == "__main__":
    sys.exit(main())
