"""Run the system locally: `python -m local demo|serve|invoke` (see `make local`, `make invoke`)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console
from rich.table import Table

from local import demo, sample_payloads
from local.batch_outcomes import batch_outcomes
from local.emulator import rie_binary
from local.event_source import BatchResult
from local.orders_api import ORDERS_API_URL, OrdersApi
from local.pipeline import running_pipeline
from local.sqs_server import s3_client
from operations.cli import INTERRUPTED_EXIT, ArgumentParser, command
from sqs_consumer.settings import ConsumerSettings

ROOT = Path(__file__).resolve().parents[1]
LOG_DIR = ROOT / ".cache" / "local"
SCRIPTS = Path(sys.executable).parent
console = Console(highlight=False)


def _stop_event() -> threading.Event:
    """Set on Ctrl-C or SIGTERM: polling stops, in-flight invocations finish."""
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            return
        console.print("\n[bold]Stopping[/]: no new polls; waiting for in-flight invocations…", soft_wrap=True)
        stop.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
    return stop


def run_demo(template: Path, timeout: float, consumer: str = "") -> int:
    stop = _stop_event()
    ledger = demo.Ledger()
    started = time.monotonic()
    with running_pipeline(template, LOG_DIR, on_batch=ledger.on_batch, consumer=consumer) as pipeline:
        plan = pipeline.plan
        console.print(
            f"[bold]Local pipeline[/] from {template.name}: moto on {pipeline.server.endpoint_url}, "
            f"{len(pipeline.functions)} function instance(s) (timeout {plan.function.timeout_seconds} s, "
            f"{plan.function.memory_mb} MB), batch {plan.mapping.batch_size}, window "
            f"{plan.mapping.batching_window_seconds} s, max receives {plan.source_queue.max_receive_count}, "
            f"visibility {plan.source_queue.attributes.get('VisibilityTimeout')} s. Logs in {LOG_DIR}."
        )
        messages = demo.demo_mix(demo.offloader(pipeline.server.endpoint_url, pipeline.payload_bucket))
        group_id = "demo" if plan.source_queue.fifo else None
        published = {} if stop.is_set() else demo.publish(pipeline.client, pipeline.queue.url, messages, group_id)
        if published:
            console.print(f"Published {len(published)} messages: {', '.join(sorted({m.label for m in messages}))}")
        states: dict[str, str] = {}
        last = ""
        while not stop.is_set() and time.monotonic() - started < timeout:
            states, _ = demo.observe(pipeline.client, pipeline.dead_letter_queue.url, published, ledger)
            counts = Counter(states.values())
            line = (
                f"succeeded {counts[demo.SUCCEEDED]}, retried {len(ledger.failures)}, quarantined "
                f"{counts[demo.QUARANTINED]}, quarantined after retries {counts[demo.RETRIES_EXHAUSTED]}, "
                f"in flight {counts[demo.IN_FLIGHT]}"
            )
            if line != last:
                console.print(f"  [dim]{time.monotonic() - started:5.1f} s[/]  {line}")
                last = line
            if counts[demo.IN_FLIGHT] == 0:
                break
            stop.wait(1.0)
    elapsed = time.monotonic() - started
    if stop.is_set():  # the person stopped it: what had not settled yet is not a failure of the system
        console.print(stopped_line(published, states, elapsed), soft_wrap=True)
        return INTERRUPTED_EXIT
    return _summary(published, states, ledger, elapsed)


def _orders_api_line(stand_in: OrdersApi | None) -> str:
    """Where order.placed goes: the stand-in on loopback, or the ORDERS_API_URL this process was given."""
    if stand_in is None:
        return f"{os.environ.get(ORDERS_API_URL)} (ORDERS_API_URL)"
    return f"{stand_in.url} (a stand-in; set ORDERS_API_URL to use yours)"


def stopped_line(published: dict[str, demo.DemoMessage], states: dict[str, str], elapsed: float) -> str:
    """The one line of a demo stopped by Ctrl-C or SIGTERM, once every process has stopped."""
    settled = sum(1 for message_id, message in published.items() if states.get(message_id) == message.expected)
    return (f"stopped after {elapsed:.0f} s: {settled} of {len(published)} published message(s) had reached "
            "their expected state; every process is stopped")  # fmt: skip


def _summary(
    published: dict[str, demo.DemoMessage], states: dict[str, str], ledger: demo.Ledger, elapsed: float
) -> int:
    counts = Counter(states.values())
    table = Table(title=f"Local run ({elapsed:.0f} s)")
    table.add_column("outcome")
    table.add_column("messages", justify="right")
    table.add_row("published", str(len(published)))
    table.add_row("succeeded", str(counts[demo.SUCCEEDED]))
    table.add_row("retried (listed at least once)", str(len(ledger.failures)))
    table.add_row("quarantined", str(counts[demo.QUARANTINED]))
    table.add_row("quarantined after retries", str(counts[demo.RETRIES_EXHAUSTED]))
    table.add_row("in the DLQ without a reason", str(counts[demo.NO_REASON]))
    table.add_row("still in flight", str(counts[demo.IN_FLIGHT]))
    console.print(table)
    wrong = {mid: message for mid, message in published.items() if states.get(mid) != message.expected}
    for message_id, message in wrong.items():
        console.print(
            f"[red]unexpected[/]: {message.label} ({message_id}) is {states.get(message_id)}, "
            f"expected {message.expected}"
        )
    if counts[demo.IN_FLIGHT] or counts[demo.INCONSISTENT] or wrong:
        console.print("[red]Not every message reached its expected state.[/]")
        return 1
    console.print("[green]Every message is accounted for.[/]")
    return 0


def run_serve(template: Path, consumer: str = "") -> int:
    stop = _stop_event()

    def feed(result: BatchResult) -> None:
        line = batch_outcomes(result).describe(result.duration_seconds * 1000)
        console.print(f"  {line}", soft_wrap=True, markup=False)

    with running_pipeline(template, LOG_DIR, on_batch=feed, consumer=consumer) as pipeline:
        group = " --group-id demo" if pipeline.plan.source_queue.fifo else ""
        connection = f"--endpoint-url {pipeline.server.endpoint_url} --region us-east-1"
        offload = f" --payload-bucket {pipeline.payload_bucket}" if pipeline.payload_bucket else ""
        event = '\'{"event_id": "evt_1", "event_type": "hello", "payload": {"name": "you"}}\''
        credentials = "AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local"
        # Printed whole, never wrapped: each command pastes as one line.
        lines = [
            f"Serving (Ctrl-C stops; from a script, send SIGTERM to make or to process {os.getpid()}):",
            f"  queue      {pipeline.queue.url}",
            f"  DLQ        {pipeline.dead_letter_queue.url}",
            f"  DLQ ARN    {pipeline.dead_letter_queue.arn}",
            f"  payloads   {pipeline.payload_bucket or '(no payload bucket in the template)'}",
            f"  mapping    {pipeline.mapping_id} (UpdateEventSourceMapping on it pauses or resizes the poller)",
            f"  orders API {_orders_api_line(pipeline.orders_api)}",
            f"  logs       {LOG_DIR}",
            "Publish from another terminal (events above the queue's maximum go to the payload bucket):",
            f"  {credentials} {SCRIPTS}/sqs-publish {connection} --queue-url {pipeline.queue.url}{group}{offload} "
            f"{event}",
            "See what was quarantined:",
            f"  {credentials} {SCRIPTS}/sqs-dlq peek {connection} --queue-url {pipeline.dead_letter_queue.url}",
            "Each batch is shown below as it settles.",
        ]
        for line in lines:
            console.out(line, highlight=False)
        stop.wait()
    # Ctrl-C is how serve mode is meant to end: a success, unlike a demo stopped half-way.
    console.print("Stopped: no process left behind.")
    return 0


def sqs_event_problem(event: object) -> str | None:
    """Why ``event`` is not an SQS event as the mapping delivers it, or None."""
    if not isinstance(event, dict) or not isinstance(event.get("Records"), list) or not event["Records"]:
        return 'not an SQS event: expected {"Records": [...]} with at least one record'
    for index, record in enumerate(event["Records"]):
        if not isinstance(record, dict) or record.get("eventSource") != "aws:sqs":
            return f'not an SQS event: Records[{index}] has no "eventSource": "aws:sqs"'
        missing = [key for key in ("messageId", "receiptHandle", "body", "eventSourceARN") if key not in record]
        if missing:
            return f"not an SQS event: Records[{index}] lacks {', '.join(missing)}"
    return None


def expected_for(event_path: Path) -> dict[str, Any] | None:
    expected = event_path.with_name(event_path.name.removesuffix(".json") + ".expected.json")
    return json.loads(expected.read_text()) if expected.is_file() else None


def run_invoke(template: Path, event_path: Path, consumer: str = "") -> int:
    try:
        event = json.loads(event_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        console.print(f"[red]cannot read {event_path}: {error}[/]")
        return 2
    problem = sqs_event_problem(event)
    if problem is not None:
        console.print(f"[red]{event_path}: {problem}[/] (see events/ for samples, or make event)")
        return 2
    # Delivered now: the message age is measured from this invocation, not the sample's fixed time.
    now_ms = str(int(time.time() * 1000))
    for record in event["Records"]:
        attributes = record.setdefault("attributes", {})
        attributes["SentTimestamp"] = attributes["ApproximateFirstReceiveTimestamp"] = now_ms
    # A sample's receipt handles are not real: no retry backoff (it would change their visibility).
    overrides = {ConsumerSettings.env_name("retry_backoff_base_seconds"): "0"}
    with running_pipeline(
        template, LOG_DIR, poll=False, instances=1, environment_overrides=overrides, consumer=consumer
    ) as pipeline:
        # An offloaded sample's payload, where its pointer says (events/payloads/).
        sample_payloads.stage(s3_client(pipeline.server.endpoint_url), event_path.parent)
        log_path = LOG_DIR / "function-0.log"
        invocation = pipeline.functions[0].invoke(event)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and "REPORT RequestId" not in log_path.read_text():
            time.sleep(0.05)
        # The REPORT line's memory and init are the runtime's own (local/emulator.py's ReportLines).
        logs = log_path.read_text().rstrip()
        console.rule("function logs")
        console.out(logs, highlight=False)
        console.rule("response")
        console.out(json.dumps(invocation.payload, indent=2), highlight=False)
        dead = demo.dead_letters(pipeline.client, pipeline.dead_letter_queue.url)
        if dead:
            console.print(f"DLQ: {len(dead)} quarantined message(s): " + ", ".join(
                f"{source} ({letter.kind})" for source, letter in dead.items()))  # fmt: skip
    if invocation.function_error:
        console.print("[red]The invocation failed (function error).[/]")
        return 1
    expected = expected_for(event_path)
    if expected is None:
        console.print(f"No {event_path.stem}.expected.json beside the event: the response was not checked.")
        return 0
    differences = []
    if invocation.payload != {"batchItemFailures": expected["batchItemFailures"]}:
        differences.append(f"response: expected {json.dumps(expected['batchItemFailures'])}")
    if sorted(dead) != sorted(expected["quarantined"]):
        differences.append(f"quarantined: {sorted(dead)}, expected {sorted(expected['quarantined'])}")
    if differences:
        for difference in differences:
            console.print(f"[red]Differs from {event_path.stem}.expected.json: {difference}[/]", soft_wrap=True)
        return 1
    console.print(f"[green]As expected[/] ({event_path.stem}.expected.json): response and quarantined messages match.")
    return 0


@command
def main(argv: Sequence[str] | None = None) -> int:
    # --template is accepted before or after the command.
    common = ArgumentParser(add_help=False)
    common.add_argument(
        "--template", type=Path, default=argparse.SUPPRESS, help="synthesized template (cdk.out/<stack>.template.json)"
    )
    common.add_argument(
        "--consumer", default=argparse.SUPPRESS, help="one of the stage's consumers by name (default: the first)"
    )
    parser = ArgumentParser(prog="python -m local", description=__doc__, parents=[common])
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser("demo", parents=[common], help="publish the demo mix and account for it")
    demo_parser.add_argument("--timeout", type=float, default=170.0, help="seconds before giving up (default 170)")
    demo_parser.add_argument("--serve", action="store_true", help="publish nothing; keep running until Ctrl-C")
    invoke_parser = commands.add_parser("invoke", parents=[common], help="invoke the function once with an event file")
    invoke_parser.add_argument("event", type=Path, help="an event file, e.g. events/hello.json")
    commands.add_parser("fetch-emulator", parents=[common], help="download the emulator binary into .cache/ and exit")
    args = parser.parse_args(argv)
    if args.command == "fetch-emulator":
        console.print(str(rie_binary()))
        return 0
    template: Path | None = getattr(args, "template", None)
    if template is None:
        parser.error("--template is required (make local passes cdk.out/SqsConsumer-local.template.json)")
        return 2
    if not template.is_file():
        parser.error(f"no template at {template}: run `make synth STAGE=local` first")
    args.template = template
    consumer: str = getattr(args, "consumer", "")
    if args.command == "demo":
        return run_serve(args.template, consumer) if args.serve else run_demo(args.template, args.timeout, consumer)
    if args.command == "invoke":
        return run_invoke(args.template, args.event, consumer)
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
