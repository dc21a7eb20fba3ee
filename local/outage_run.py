"""An outage run through the local pipeline: the orders API goes down for a while, then the accounting.

    python -m local.outage_run --template cdk.out/SqsConsumer-local.template.json --outage 120
        [--breaker on|off] [--rate 2] [--before 20] [--after 20] [--outage-mode reset|refuse|503]
        [--set NAME=VALUE ...] [--timeout 600]

``order.placed`` events are published at a steady rate from the start until ``--after`` seconds past the
outage; the stand-in orders API (local/orders_api.py) is taken down ``--before`` seconds in, for
``--outage`` seconds. The run waits until every event has had its effect (a 2xx answer of the API to its
``Idempotency-Key``) or reached the DLQ and the queue is empty, then prints: messages in the DLQ, effects
run more than once, events with no effect and not in the DLQ (lost), calls the API received while down
(and per minute), the time to drain after it came back, probes fired, and the mapping's changes.
``--breaker off`` runs the same with the stage's breakers off (the function's setting, as the stage
would give it), to show the DLQ filling. ``--set NAME=VALUE`` overrides one of the function's settings
(a shorter cool-down, for example).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from local.lambda_api import lambda_client, settings_of
from local.orders_api import OUTAGE_MODES, OrderCall, OrdersApi
from local.pipeline import Pipeline, running_pipeline
from local.template import load_plan
from operations.cli import command
from operations.dlq import peek
from publisher.client import EventPublisher

ROOT = Path(__file__).resolve().parents[1]
LOG_DIR = ROOT / ".cache" / "outage-run"
SAMPLE = ROOT / "events" / "order.placed.json"
# The function's setting that turns every dependency's breaker on or off (the stage's breakers setting).
BREAKERS_SETTING = "BREAKERS_ENABLED"
# Where the probes' schedules go and the role they name, when the template does not say: moto's default
# group, and a role moto's Scheduler does not check (the local scheduler invokes the function itself).
LOCAL_PROBE_WIRING = {
    "PROBE_SCHEDULE_GROUP": "default",
    "PROBE_ROLE_ARN": "arn:aws:iam::123456789012:role/local-probe-invoker",
}
# The target: the queue drains within a minute of the API's recovery.
DRAIN_TARGET_SECONDS = 60.0
PROGRESS_EVERY_SECONDS = 15.0
# The kind of a DLQ message the function did not quarantine: SQS moved it once its receives were spent.
NO_REASON = "no reason"


@dataclass(frozen=True)
class OutagePlan:
    outage: float
    before: float = 20.0
    after: float = 20.0
    rate: float = 2.0  # events published per second
    mode: str = "reset"

    @property
    def count(self) -> int:
        return max(1, int(self.rate * (self.before + self.outage + self.after)))


@dataclass
class OutageReport:
    plan: OutagePlan
    breakers: bool
    started: float = 0.0
    published: dict[str, float] = field(default_factory=dict)  # event_id -> sent at (wall clock)
    calls: list[OrderCall] = field(default_factory=list)
    dead: dict[str, str] = field(default_factory=dict)  # event_id -> quarantine kind (or "no reason")
    outage: tuple[float, float] | None = None
    mapping_changes: list[tuple[float, bool, int]] = field(default_factory=list)
    probes: int = 0
    drained_at: float | None = None
    publish_errors: list[str] = field(default_factory=list)

    @property
    def effects(self) -> Counter[str]:
        """Per event, the orders the API accepted (a 2xx answer to a POST with its Idempotency-Key)."""
        return Counter(
            call.idempotency_key or ""
            for call in self.calls
            if call.method == "POST" and call.status is not None and 200 <= call.status < 300
        )

    @property
    def repeated(self) -> list[str]:
        return sorted(event_id for event_id, runs in self.effects.items() if runs > 1 and event_id in self.published)

    @property
    def lost(self) -> list[str]:
        effects = self.effects
        return sorted(e for e in self.published if not effects[e] and e not in self.dead)

    @property
    def calls_while_down(self) -> list[OrderCall]:
        return [call for call in self.calls if call.down]

    @property
    def drain_seconds(self) -> float | None:
        if self.drained_at is None or self.outage is None:
            return None
        return max(0.0, self.drained_at - self.outage[1])

    def problems(self) -> list[str]:
        problems = [f"{len(self.lost)} event(s) neither had their effect nor reached the DLQ: {self.lost[:5]}"] * bool(
            self.lost
        )
        if self.repeated:
            problems.append(f"{len(self.repeated)} event(s) had their effect more than once: {self.repeated[:5]}")
        if self.drained_at is None:
            problems.append("the queue had not drained when the run timed out")
        if self.breakers and self.dead:
            problems.append(f"{len(self.dead)} message(s) in the DLQ with the breakers on")
        return problems + self.publish_errors[:5]


def breaker_environment(template: Path, breakers: bool) -> dict[str, str]:
    """The function's breakers on or off, as the stage's setting would set them; on, the probes' wiring the
    template lacks (its schedule group and role) filled with local stand-ins."""
    if not breakers:
        return {BREAKERS_SETTING: "false"}
    given = load_plan(template).function.environment
    return {
        BREAKERS_SETTING: "true",
        **{name: value for name, value in LOCAL_PROBE_WIRING.items() if name not in given},
    }


def order_event(event_id: str, index: int) -> dict[str, Any]:
    """The sample order.placed event, as a new order."""
    event: dict[str, Any] = json.loads(json.loads(SAMPLE.read_text())["Records"][0]["body"])
    event["event_id"] = event_id
    event["payload"] = {**event["payload"], "order_id": f"ord-outage-{index}"}
    return event


def _publish(pipeline: Pipeline, plan: OutagePlan, report: OutageReport, stop: threading.Event) -> None:
    """One event every 1/rate seconds from the start (an upstream keeps placing orders through the outage)."""
    publisher = EventPublisher(pipeline.queue.url, pipeline.client)
    for index in range(plan.count):
        if stop.wait(max(0.0, report.started + index / plan.rate - time.time())):
            return
        event_id = f"evt_{uuid.uuid4().hex[:16]}"
        [result] = publisher.publish([order_event(event_id, index)])
        if result.message_id is None:
            report.publish_errors.append(f"could not publish {event_id}: {result.error}")
            continue
        report.published[event_id] = time.time()


def _outage(api: OrdersApi, plan: OutagePlan, report: OutageReport, stop: threading.Event) -> None:
    if stop.wait(plan.before):
        return
    api.take_down()
    stop.wait(plan.outage)
    api.bring_back()
    report.outage = api.outages[-1][0], api.outages[-1][1] or time.time()


def _watch_mapping(pipeline: Pipeline, report: OutageReport, stop: threading.Event) -> None:
    """The mapping's settings as the function leaves them, read once a second: each change kept."""
    client = lambda_client(pipeline.server.endpoint_url)
    last = None
    while not stop.wait(1.0):
        try:
            settings = settings_of(client.get_event_source_mapping(UUID=pipeline.mapping_id), 0)
        except Exception:  # noqa: S112  # moto busy: read again next second
            continue
        if settings != last:
            report.mapping_changes.append((time.time(), settings.enabled, settings.max_concurrency))
            last = settings


def _queue_empty(pipeline: Pipeline) -> bool:
    attributes = pipeline.client.get_queue_attributes(
        QueueUrl=pipeline.queue.url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                        "ApproximateNumberOfMessagesDelayed"],
    )["Attributes"]  # fmt: skip
    return set(attributes.values()) == {"0"}


def _observe(pipeline: Pipeline, api: OrdersApi, report: OutageReport) -> bool:
    """Refresh the report from the API's calls and the DLQ; True once every event is settled and the queue empty."""
    report.dead = {
        letter.event_id or letter.source_message_id: letter.kind or NO_REASON
        for letter in peek(pipeline.client, pipeline.dead_letter_queue.url, wait_seconds=0)
    }
    report.calls = api.calls  # after the DLQ's read (seconds, with hundreds of letters): as of now
    if pipeline.scheduler is not None:
        report.probes = len(pipeline.scheduler.fired)
    return bool(report.published) and not report.lost and _queue_empty(pipeline)


def run(  # the run's knobs, each a command-line option
    template: Path,
    plan: OutagePlan,
    *,
    breakers: bool = True,
    overrides: dict[str, str] | None = None,
    timeout: float = 600.0,
    log_dir: Path = LOG_DIR,
    console: Console | None = None,
) -> OutageReport:
    report = OutageReport(plan, breakers, started=time.time())
    environment = breaker_environment(template, breakers) | (overrides or {})
    api = OrdersApi(outage=plan.mode).start()
    stop = threading.Event()
    try:
        with running_pipeline(template, log_dir, orders_api=api, environment_overrides=environment) as pipeline:
            report.started = time.time()  # once everything is up: the plan's times count from here
            threads = [
                threading.Thread(target=target, args=args, daemon=True)
                for target, args in (
                    (_publish, (pipeline, plan, report, stop)),
                    (_outage, (api, plan, report, stop)),
                    (_watch_mapping, (pipeline, report, stop)),
                )
            ]
            for thread in threads:
                thread.start()
            _wait(pipeline, api, plan, report, timeout, console)
            stop.set()
            for thread in threads:
                thread.join(10)
            _observe(pipeline, api, report)
    finally:
        stop.set()
        api.stop()
    return report


def _wait(  # noqa: PLR0917  # what the run made
    pipeline: Pipeline, api: OrdersApi, plan: OutagePlan, report: OutageReport, timeout: float, console: Console | None
) -> None:
    """Until the outage is over, every event published and settled, and the queue empty (or ``timeout``)."""
    last, shown_at = "", 0.0
    while time.time() - report.started < timeout:
        finished = report.outage is not None and len(report.published) + len(report.publish_errors) >= plan.count
        if finished and _observe(pipeline, api, report):
            report.drained_at = time.time()
            return
        if not finished:
            _observe(pipeline, api, report)
        phase, line = _progress(report, api)
        if console is not None and (phase != last or time.time() - shown_at >= PROGRESS_EVERY_SECONDS):
            console.print(f"  {time.time() - report.started:5.0f} s  {line}", markup=False, soft_wrap=True)
            last, shown_at = phase, time.time()
        time.sleep(2.0)


def _progress(report: OutageReport, api: OrdersApi) -> tuple[str, str]:
    """The run's phase (the API up or down, the mapping's state) and a line of figures."""
    mapping = "mapping not read yet"
    if report.mapping_changes:
        _, enabled, concurrency = report.mapping_changes[-1]
        mapping = f"mapping {'enabled' if enabled else 'disabled'}, max concurrency {concurrency}"
    phase = f"orders API {'DOWN' if api.down else 'up'}, {mapping}"
    effects = report.effects
    done = sum(1 for event_id in report.published if effects[event_id] or event_id in report.dead)
    line = (
        f"{phase}; published {len(report.published)}/{report.plan.count}, settled {done}, in the DLQ "
        f"{len(report.dead)}, API calls {len(report.calls)} ({len(report.calls_while_down)} while down), "
        f"probes {report.probes}"
    )
    return phase, line


def _at(report: OutageReport, wall: float) -> str:
    return f"{wall - report.started:.0f} s"


def render(report: OutageReport, console: Console) -> None:
    plan = report.plan
    down = report.calls_while_down
    minutes = plan.outage / 60
    console.print(
        f"[bold]Outage run[/]: orders API down {plan.outage:.0f} s ({plan.mode}) after {plan.before:.0f} s, "
        f"{len(report.published)} order.placed events at {plan.rate:g}/s, breakers "
        f"{'on' if report.breakers else 'off'}",
        soft_wrap=True,
    )
    drain = report.drain_seconds
    met = "met" if drain is not None and drain <= DRAIN_TARGET_SECONDS else "missed"
    calls_down = (
        "not seen (connections refused)" if plan.mode == "refuse" else f"{len(down)} ({len(down) / minutes:.1f}/min)"
    )
    rows = [
        (
            "messages in the DLQ",
            f"{len(report.dead)}" + (f" {dict(Counter(report.dead.values()))}" if report.dead else ""),
        ),
        ("effects run more than once", str(len(report.repeated))),
        ("events lost (no effect, not in the DLQ)", str(len(report.lost))),
        ("calls the orders API received while down", calls_down),
        (
            "time to drain after it came back",
            f"{drain:.0f} s (target {DRAIN_TARGET_SECONDS:.0f} s: {met})" if drain is not None else "did not drain",
        ),
        ("probes fired (scheduled invocations)", str(report.probes)),
    ]
    for label, value in rows:
        console.print(f"  {label:<42} {value}", soft_wrap=True, markup=False)
    changes = ", ".join(
        f"{_at(report, at)} {'enabled' if on else 'disabled'}/{n}" for at, on, n in report.mapping_changes
    )
    console.print(f"  mapping (enabled/max concurrency): {changes or 'never read'}", soft_wrap=True, markup=False)
    if report.outage is not None:
        console.print(
            f"  API down from {_at(report, report.outage[0])} to {_at(report, report.outage[1])}", markup=False
        )
    redriven = sorted(event_id for event_id, kind in report.dead.items() if kind == NO_REASON)
    if redriven:
        console.print(f"  moved to the DLQ by SQS (maxReceiveCount receives spent, no quarantine): {redriven[:5]}",
                      soft_wrap=True, markup=False)  # fmt: skip
    for problem in report.problems():
        console.print(f"[red]{problem}[/]", soft_wrap=True)
    if report.problems():
        return
    if report.dead:  # breakers off: what the breakers are there to prevent, shown as such
        console.print(f"[yellow]{len(report.dead)} message(s) spent on the outage (in the DLQ), as expected with the "
                      "breakers off; none lost, none run twice.[/]", soft_wrap=True)  # fmt: skip
    else:
        console.print("[green]No message spent on the outage.[/]")


def _setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, not {text!r}")
    return name, value


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m local.outage_run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--template", type=Path, required=True)
    parser.add_argument("--outage", type=_positive, required=True, help="seconds the orders API is down")
    parser.add_argument("--before", type=_positive, default=20.0, help="seconds before the outage")
    parser.add_argument("--after", type=_positive, default=20.0, help="seconds of publishing after it")
    parser.add_argument("--rate", type=_positive, default=2.0, help="order.placed events published per second")
    parser.add_argument("--outage-mode", choices=OUTAGE_MODES, default="reset")
    parser.add_argument("--breaker", choices=("on", "off"), default="on")
    parser.add_argument("--set", type=_setting, action="append", default=[], metavar="NAME=VALUE",
                        help="one of the function's settings (environment), e.g. a shorter cool-down")  # fmt: skip
    parser.add_argument("--timeout", type=_positive, default=None, help="seconds for the whole run")
    return parser.parse_args(argv)


@command  # Ctrl-C or SIGTERM: the pipeline's processes stopped, one line, exit 130
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    plan = OutagePlan(args.outage, args.before, args.after, args.rate, args.outage_mode)
    timeout = args.timeout or plan.before + plan.outage + plan.after + 300
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
    report = run(args.template, plan, breakers=args.breaker == "on", overrides=dict(args.set), timeout=timeout,
                 console=console)  # fmt: skip
    render(report, console)
    console.print(f"\nLogs: {LOG_DIR}/")
    return 0 if not report.problems() else 1


if __name__ == "__main__":
    sys.exit(main())
