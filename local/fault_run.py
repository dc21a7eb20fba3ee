"""A fault run through the local pipeline: a seeded mix of every fault, then the accounting.

    python -m local.fault_run --template cdk.out/SqsConsumer-local.template.json [--messages 1000] [--seed 7]
        [--crashes 3]

The mix: successes, duplicates (same event_id, another message), flaky records, records that
fail on every receive, slow records that meet the near-timeout guard, late records that meet it
on receive after receive, malformed JSON, invalid payloads, unknown types, and events in the shapes
upstream services deliver: SNS notifications, EventBridge events (detail an event, or a payload
routed by detail-type) and payloads offloaded to moto's S3 (local/shapes.py). The run checks that
every handler effect happened exactly once per event_id, every poison message reached the DLQ
with its reason after one receive, every always-failing record was quarantined with its last
error on its last allowed receive, every late record either ran once or was quarantined saying
it never started or timed out, every message in the DLQ carries a reason, no message was lost, and no batch
was redelivered because of a function timeout. With ``--crashes N``, N invocations have their
runtime process SIGKILLed at a random moment (local/crashes.py); their messages come back after the
visibility timeout, and the accounting still holds: an effect runs twice only if its handler
returned within the crash's last store round trips, and those are counted apart.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from local import demo, shapes
from local.crashes import CrashInjector, Kill
from local.event_source import BatchResult
from local.pipeline import Pipeline, running_pipeline
from local.sqs_server import s3_client
from local.template import TemplateError
from operations.cli import command
from operations.letters import approximate_count
from sqs_consumer.registry import UNREGISTERED_TYPE

ROOT = Path(__file__).resolve().parents[1]
LOG_DIR = ROOT / ".cache" / "fault-run"
# Log lines the handlers write when their effect happens (seen at DEBUG).
EFFECT_MESSAGES = ("Hello", "Document processed")
# Mix weights; a duplicate repeats an earlier success's event_id in a new message.
MIX = {
    "success": 55, "duplicate": 10, "flaky": 8, "failing": 3, "slow": 1,
    "malformed": 6, "invalid_payload": 5, "unknown_type": 5,
    shapes.SNS: 3, shapes.EVENTBRIDGE_DETAIL: 3, shapes.EVENTBRIDGE_PLAIN: 3, shapes.OFFLOADED: 3,
}  # fmt: skip
EXPECTED = {
    "success": demo.SUCCEEDED, "duplicate": demo.SUCCEEDED, "flaky": demo.SUCCEEDED, "slow": demo.SUCCEEDED,
    "failing": demo.RETRIES_EXHAUSTED, "malformed": demo.QUARANTINED, "invalid_payload": demo.QUARANTINED,
    "unknown_type": demo.QUARANTINED, "late": demo.NEVER_STARTED, **dict.fromkeys(shapes.SHAPES, demo.SUCCEEDED),
}  # fmt: skip
# A late record may also run on one of its receives, or be cut off at the handlers' deadline on each
# one (its pool turn came within the reserve: called, so never "not started", docs/design.md §4).
ALSO_ACCEPTED = {"late": {demo.SUCCEEDED, demo.RETRIES_EXHAUSTED}}
KINDS = [*MIX, "late"]
POISON = {"malformed", "invalid_payload", "unknown_type"}
# Slow records come in bursts so that one batch holds more than its workers finish before
# the time reserve: the later ones meet the near-timeout guard and return at once.
SLOW_BURST = 8
# Late records: a burst sent and settled alone, before the rest of the mix. Each takes longer than the
# time left above the reserve once it starts, so a batch runs one per worker and the guard stops the
# rest; those return at once, together, to the next batch. With more late records than workers x
# maxReceiveCount, the last ones meet the guard on every receive and are quarantined saying they never
# started; the others run once. Alone, because a late record is only safe at the head of its batch:
# one that starts behind other work (a publisher sends in parallel, so the order the queue holds is not
# the plan's) outlasts the function's timeout, and every record behind late ones loses a receive to the
# guard, so the first messages after them would be quarantined as never started too.
LATE_BURST = 24
# How long the late records get to settle before the rest of the mix is sent (they need about
# maxReceiveCount rounds of a function timeout each).
LATE_PHASE_SECONDS = 120.0
# An effect a crash may repeat is one whose completion the store had not confirmed when the crash hit
# (docs/design.md §4: the write in flight and the one waiting for it). The function logs each group
# commit's write as it returns ("Completions written"), so that is read, not guessed from a time window:
# on moto_server a write takes up to about 0.5 s when queued behind the other instances' calls.
WRITTEN_MESSAGE = "Completions written"
# A kill belongs to the effect's invocation only if it came within the function's longest timeout.
MAX_INVOCATION_SECONDS = 60.0


@dataclass
class Planned:
    kind: str
    body: str
    event_id: str | None
    # Message attributes sent with the body (an offloaded payload's size).
    attributes: dict[str, Any] | None = None


@dataclass(frozen=True)
class Effect:
    event_id: str
    instance: int
    at: float


@dataclass
class FaultReport:
    published: dict[str, Planned] = field(default_factory=dict)
    states: dict[str, str] = field(default_factory=dict)
    effects: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    dead: dict[str, Any] = field(default_factory=dict)
    effect_log: list[Effect] = field(default_factory=list)
    kills: list[Kill] = field(default_factory=list)
    # Messages of the batches a crash ended: the crash used up one of their receives.
    crashed: set[str] = field(default_factory=set)
    repeated_by_crash: set[str] = field(default_factory=set)
    function_errors: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems


Payload = tuple[str, dict[str, Any]]
# event_type and payload of each kind, given its event_id and the slow delay.
_BUILDERS: dict[str, Any] = {
    "success": lambda eid, slow_ms: ("hello", {"name": eid}),
    "flaky": lambda eid, slow_ms: ("hello", {"name": eid, "simulate": "flaky"}),
    "failing": lambda eid, slow_ms: ("hello", {"name": eid, "simulate": "fail"}),
    "slow": lambda eid, slow_ms: ("hello", {"name": eid, "simulate": "slow", "delay_ms": slow_ms}),
    "late": lambda eid, late_ms: ("hello", {"name": eid, "simulate": "slow", "delay_ms": late_ms}),
    "invalid_payload": lambda eid, slow_ms: ("document.processed", {"document_id": ""}),
    "unknown_type": lambda eid, slow_ms: (UNREGISTERED_TYPE, {"name": eid}),
    **dict.fromkeys(shapes.SHAPES, lambda eid, slow_ms: ("hello", {"name": eid})),
}


def plan_messages(
    count: int, seed: int, slow_ms: int, late_ms: int | None = None, *, late: bool = True
) -> list[Planned]:
    rng = random.Random(seed)  # noqa: S311  # a reproducible mix, not a secret
    planned: list[Planned] = []
    # Successes a duplicate may repeat: the same event (id, type and payload) in a new message.
    done: list[Planned] = []

    def add(kind: str, event_id: str) -> None:
        if kind == "malformed":
            planned.append(Planned(kind, '{"event_id": "' + event_id + '", "event_type": "hello", ', None))
            return
        event_type, payload = _BUILDERS[kind](event_id, late_ms if kind == "late" and late_ms else slow_ms)
        if kind == "success" and rng.random() < 0.3:
            event_type, payload = "document.processed", {"document_id": event_id}
        event = {"event_id": event_id, "event_type": event_type, "payload": payload}
        if kind == shapes.EVENTBRIDGE_PLAIN and rng.random() < 0.5:
            event = {**event, "event_type": "document.processed", "payload": {"document_id": event_id}}
        # An offloaded event is put in S3 when it is sent (_publish); the others are wrapped here.
        wrapped = kind in shapes.SHAPES and kind != shapes.OFFLOADED
        planned.append(Planned(kind, shapes.wrap(kind, event) if wrapped else json.dumps(event), event_id))

    # One burst of late records, first, so that they are sent and received together.
    for _ in range(min(LATE_BURST, count // 10) if late else 0):
        add("late", f"evt_{uuid.UUID(int=rng.getrandbits(128)).hex[:16]}")
    for choice in rng.choices(list(MIX), weights=list(MIX.values()), k=count):
        if len(planned) >= count:
            break
        new_id = f"evt_{uuid.UUID(int=rng.getrandbits(128)).hex[:16]}"
        if choice == "duplicate" and done:
            original = rng.choice(done)
            planned.append(Planned("duplicate", original.body, original.event_id))
            continue
        kind = "success" if choice == "duplicate" else choice
        bursts = {"slow": SLOW_BURST, "late": LATE_BURST}
        burst = min(bursts.get(kind, 1), count - len(planned))
        for index in range(burst):
            add(kind, new_id if index == 0 else f"evt_{uuid.UUID(int=rng.getrandbits(128)).hex[:16]}")
        if kind == "success":
            done.append(planned[-1])
    return planned


def _effects(log_dir: Path) -> list[Effect]:
    effects = []
    for path in log_dir.glob("function-*.log"):
        instance = int(path.stem.rsplit("-", 1)[1])
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{") and any(f'"message":"{m}"' in line for m in EFFECT_MESSAGES):
                record = json.loads(line)
                at = datetime.strptime(record["timestamp"], "%Y-%m-%d %H:%M:%S,%f%z").timestamp()
                effects.append(Effect(record["event_id"], instance, at))
    return effects


def _confirmed(log_dir: Path) -> dict[int, list[tuple[float, set[str]]]]:
    """Per instance, when each group-commit write returned and the completions it confirmed."""
    writes: dict[int, list[tuple[float, set[str]]]] = {}
    for path in log_dir.glob("function-*.log"):
        instance = int(path.stem.rsplit("-", 1)[1])
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{") and f'"message":"{WRITTEN_MESSAGE}"' in line:
                record = json.loads(line)
                if record.get("missed") == 0:
                    at = datetime.strptime(record["timestamp"], "%Y-%m-%d %H:%M:%S,%f%z").timestamp()
                    writes.setdefault(instance, []).append((at, set(record.get("completed", []))))
    return writes


def _repeated_by_crash(effects: list[Effect], kills: list[Kill],
                       writes: dict[int, list[tuple[float, set[str]]]]) -> set[str]:  # fmt: skip
    """Events that ran again, whose first effect's instance was killed in that invocation before the
    store confirmed its completion."""
    runs = Counter(effect.event_id for effect in effects)
    first: dict[str, Effect] = {}
    for effect in sorted(effects, key=lambda effect: effect.at):
        if runs[effect.event_id] > 1:
            first.setdefault(effect.event_id, effect)

    def unconfirmed_at(kill: Kill, effect: Effect) -> bool:
        confirmed = (ids for at, ids in writes.get(effect.instance, []) if effect.at <= at <= kill.at)
        return not any(effect.event_id in ids for ids in confirmed)

    return {
        event_id
        for event_id, effect in first.items()
        if any(
            kill.instance == effect.instance
            and 0 <= kill.at - effect.at <= MAX_INVOCATION_SECONDS
            and unconfirmed_at(kill, effect)
            for kill in kills
        )
    }


def run(
    template: Path,
    count: int,
    seed: int,
    timeout: float,
    log_dir: Path = LOG_DIR,
    *,
    console: Console | None = None,
    crashes: int = 0,
    late_records: bool = True,
) -> FaultReport:
    """The fault run; with a ``console``, a live progress bar of settled messages. Without ``late_records``
    (their phase that takes longest), the rest of the mix only."""
    report = FaultReport()
    ledger = demo.Ledger()

    def on_batch(result: BatchResult) -> None:
        ledger.on_batch(result)
        if result.reason == "function_error":
            report.crashed.update(result.message_ids)

    started = time.monotonic()
    display = RunProgress(console, ledger)
    with (
        display.bar,
        running_pipeline(template, log_dir, on_batch=on_batch, log_level="DEBUG") as pipeline,
    ):
        injector = CrashInjector(pipeline.functions, crashes, seed)
        display.start(count)

        def settle_late(late: dict[str, Planned]) -> None:
            display.phase("late records", len(late), f"published {len(late)} late records first, alone", completed=0)
            _settle(pipeline, late, ledger, started + min(LATE_PHASE_SECONDS, timeout), display.show)
            injector.start()  # while the rest is sent and taken: a short run has little left to crash after

        planned = _plan(pipeline, count, seed, late_records)
        if all(item.kind != "late" for item in planned):
            injector.start()  # no late phase to wait for: the crashes come while the mix is sent and taken
        report.published = publish_late_first(planned, lambda items: _send(pipeline, items), settle_late)
        display.phase("settling", len(report.published), f"published {len(report.published)}")
        report.states, report.dead = _settle(pipeline, report.published, ledger, started + timeout, display.show)
        max_receives = pipeline.plan.source_queue.max_receive_count
        injector.stop()
    report.kills = injector.kills
    report.seconds = time.monotonic() - started
    report.function_errors = ledger.invocations["function_error"]
    _read_effects(report, log_dir)
    _check(report, report.dead, ledger, max_receives)
    return report


def _read_effects(report: FaultReport, log_dir: Path) -> None:
    """The handlers' effects, from the functions' logs, and the events a crash ran again."""
    report.effect_log = _effects(log_dir)
    report.effects = Counter(effect.event_id for effect in report.effect_log)
    report.repeated_by_crash = _repeated_by_crash(report.effect_log, report.kills, _confirmed(log_dir))


class RunProgress:
    """The fault run's progress: a live bar of settled messages, and the same as plain lines where the output
    is not a terminal (ProgressLines); both disabled without a console."""

    def __init__(self, console: Console | None, ledger: demo.Ledger) -> None:
        self.bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), console=console, disable=console is None,
            transient=False,
        )  # fmt: skip
        self._console = console
        self._ledger = ledger
        self._task = TaskID(-1)
        self._lines = ProgressLines(None)

    def start(self, total: int) -> None:
        """The bar's task, and the lines' clock, from the moment the pipeline is up."""
        self._task = self.bar.add_task("publishing", total=total, detail="")
        self._lines = ProgressLines(self._console)

    def phase(self, description: str, total: int, line: str, *, completed: int | None = None) -> None:
        self.bar.update(self._task, description=description, total=total, completed=completed)
        self._lines.show(line, force=True)

    def show(self, states: dict[str, str], in_flight: int) -> None:
        detail = f"in flight {in_flight}, invocations {sum(self._ledger.invocations.values())}"
        self.bar.update(self._task, completed=len(states) - in_flight, detail=f"published {len(states)}, {detail}")
        self._lines.show(f"settled {len(states) - in_flight}/{len(states)}, {detail}")


def publish_late_first(
    planned: list[Planned],
    send: Callable[[list[Planned]], dict[str, Planned]],
    settle: Callable[[dict[str, Planned]], None],
) -> dict[str, Planned]:
    """The late records sent and settled alone, then the rest of the mix sent; all by message id.

    A late record is safe only at the head of its batch (LATE_BURST): alone, it always is.
    """
    published = send([item for item in planned if item.kind == "late"])
    if published:
        settle(dict(published))
    published.update(send([item for item in planned if item.kind != "late"]))
    return published


def _settle(
    pipeline: Pipeline,
    published: dict[str, Planned],
    ledger: demo.Ledger,
    until: float,
    show: Callable[[dict[str, str], int], None],
) -> tuple[dict[str, str], dict[str, Any]]:
    """Observe until every published message is settled (or ``until``, monotonic); the last observation."""
    while True:
        states, dead = demo.observe(pipeline.client, pipeline.dead_letter_queue.url, published, ledger)
        in_flight = sum(state == demo.IN_FLIGHT for state in states.values())
        show(states, in_flight)
        # A DLQ message hidden (received and not yet released) is not in what peek saw.
        dlq_hidden = approximate_count(pipeline.client, pipeline.dead_letter_queue.url).in_flight
        if (not in_flight and not dlq_hidden) or time.monotonic() >= until:
            return states, dead
        time.sleep(1.0)


def _plan(pipeline: Pipeline, count: int, seed: int, late: bool) -> list[Planned]:
    """The seeded mix, its offloaded payloads put in moto's S3."""
    plan = pipeline.plan
    # A slow record takes half the time reserve: a burst of them in one batch outlasts the
    # workers, so the later ones meet the near-timeout guard, while a record started just
    # before the guard still ends, with its store calls, before the timeout.
    reserve_ms = int(plan.function.environment.get("TIME_RESERVE_MS", "1000"))
    timeout_ms = plan.function.timeout_seconds * 1000
    planned = plan_messages(count, seed, slow_ms=reserve_ms // 2, late_ms=timeout_ms - reserve_ms + 500, late=late)
    offloaded = [item for item in planned if item.kind == shapes.OFFLOADED]
    if offloaded:
        if pipeline.payload_bucket is None:
            raise TemplateError("the template has no payload bucket (PAYLOAD_BUCKET) to offload events to")
        s3 = s3_client(pipeline.server.endpoint_url)
        for item in offloaded:
            item.body, item.attributes = shapes.offload(s3, pipeline.payload_bucket, item.body)
    return planned


def _send(pipeline: Pipeline, planned: list[Planned]) -> dict[str, Planned]:
    """``planned`` sent; by message id."""
    return demo.send(
        pipeline.client,
        pipeline.queue.url,
        planned,
        body=lambda item: item.body,
        raw=lambda item: item.kind in POISON or item.kind in shapes.SHAPES,
        attributes=lambda item: item.attributes,
    )


def _check(report: FaultReport, dead: dict[str, Any], ledger: demo.Ledger, max_receives: int | None) -> None:
    problems = report.problems
    for message_id, item in report.published.items():
        state = report.states.get(message_id)
        if message_id in report.crashed:
            # A crash used up one of its receives: on its last one, SQS's redrive takes it to the DLQ
            # without a reason (the backstop for crashes). Still, nothing may be lost.
            if state in (demo.IN_FLIGHT, demo.INCONSISTENT, None):
                problems.append(f"{item.kind} message {message_id} of a crashed batch is {state}")
            continue
        if state != EXPECTED[item.kind] and state not in ALSO_ACCEPTED.get(item.kind, ()):
            problems.append(f"{item.kind} message {message_id} is {state}, expected {EXPECTED[item.kind]}")
        letter = dead.get(message_id)
        if item.kind in POISON and letter is not None and letter.receive_count != "1":
            problems.append(f"poison message {message_id} was quarantined after {letter.receive_count} receives")
        if item.kind in ("failing", "late") and letter is not None and letter.receive_count != str(max_receives):
            problems.append(f"{item.kind} message {message_id} was quarantined on receive {letter.receive_count}")
        if item.kind == "failing" and max_receives and ledger.failures[message_id] != max_receives - 1:
            problems.append(f"failing message {message_id} was listed {ledger.failures[message_id]} times")
    for message_id, letter in dead.items():
        if not letter.reason and message_id not in report.crashed:
            problems.append(f"DLQ message {message_id} carries no reason")
    _check_effects(report)
    if report.function_errors > len(report.kills):
        problems.append(
            f"{report.function_errors - len(report.kills)} invocation(s) failed as a whole (timeout or crash) "
            "beside the crashes the run caused"
        )


def _check_effects(report: FaultReport) -> None:
    """Each event that succeeded had one effect; two only if a crash came right after the first."""
    problems = report.problems
    expected_effects = {
        p.event_id or "" for mid, p in report.published.items() if report.states.get(mid) == demo.SUCCEEDED
    }
    crashed_events = {report.published[mid].event_id for mid in report.crashed if mid in report.published}
    for event_id in filter(None, expected_effects | crashed_events):
        effects = report.effects[event_id]
        if effects == 2 and event_id in report.repeated_by_crash:  # its completion unconfirmed at the crash
            continue
        if effects != 1 and not (effects == 0 and event_id in crashed_events - expected_effects):
            problems.append(f"event {event_id} had {effects} effects, expected exactly 1")
    extra = set(report.effects) - expected_effects - crashed_events
    if extra:
        problems.append(f"effects for events that should have none: {sorted(extra)[:5]}")


# What each row of the table is, printed under it.
KIND_LEGEND = {
    "success": "a valid event; its handler succeeds on the first receive",
    "duplicate": "a new message carrying an earlier success's event_id; acknowledged, no second effect",
    "flaky": "fails (retryably) on its first receive, succeeds on the next",
    "failing": "fails on every receive; quarantined with its last error on its last allowed receive",
    "slow": "takes half the time reserve, in bursts: the later ones of a batch meet the near-timeout guard",
    "malformed": "a body that is not JSON: quarantined on its first receive",
    "invalid_payload": "a payload its model refuses: quarantined on its first receive",
    "unknown_type": "an event_type nothing handles: quarantined on its first receive",
    "late": "longer than the time left once started: runs once, or meets the guard (or the handlers' "
    "deadline) on every receive and is quarantined saying it never started (or timed out)",
    shapes.SNS: "an event in an SNS notification (raw delivery off): its handler runs once",
    shapes.EVENTBRIDGE_DETAIL: "an EventBridge event whose detail is an event: its handler runs once",
    shapes.EVENTBRIDGE_PLAIN: "an EventBridge event routed by detail-type, its detail the payload: runs once",
    shapes.OFFLOADED: "a payload in moto's S3, an extended client's pointer in the body: fetched, runs once",
}
COLUMN_LEGEND = (
    "reached it: messages in their expected final state (late: either outcome); effects: handler effects "
    "logged, exactly one per succeeded event_id; in DLQ / with reason: copies in the DLQ and how many carry "
    "quarantine.reason"
)
TOTALS_LEGEND = (
    "inconsistent: deleted by the mapping and also in the DLQ without a reason (a message has one end); "
    "lost or in flight: neither deleted nor in the DLQ when the run ended"
)


def _reached(report: FaultReport, kind: str, ids: list[str]) -> str:
    states = Counter(report.states.get(mid) for mid in ids)
    accepted = [EXPECTED[kind], *sorted(ALSO_ACCEPTED.get(kind, set()))]
    reached = sum(states[state] for state in accepted)
    if len(accepted) == 1:
        return str(reached)
    return f"{reached} ({', '.join(f'{states[state]} {state}' for state in accepted)})"


def render(report: FaultReport, console: Console) -> None:
    kinds = Counter(item.kind for item in report.published.values())
    table = Table(title=f"Fault run: {len(report.published)} messages in {report.seconds:.0f} s")
    for column in ("kind", "published", "expected end", "reached it", "effects", "in DLQ", "with reason"):
        table.add_column(column, justify="left" if column in ("kind", "expected end", "reached it") else "right")
    for kind in KINDS:
        ids = [mid for mid, item in report.published.items() if item.kind == kind]
        expected = " or ".join([EXPECTED[kind], *sorted(ALSO_ACCEPTED.get(kind, set()))])
        effects = sum(report.effects[report.published[mid].event_id or ""] for mid in ids)
        in_dlq = [report.dead[mid] for mid in ids if mid in report.dead]
        table.add_row(
            kind,
            str(kinds[kind]),
            expected,
            _reached(report, kind, ids),
            str(effects) if kind != "duplicate" else "0 new",
            str(len(in_dlq)),
            str(sum(bool(letter.reason) for letter in in_dlq)),
        )
    console.print(table)
    for kind in KINDS:
        console.print(f"  [bold]{kind}[/]: {KIND_LEGEND[kind]}", soft_wrap=True)
    console.print(f"  {COLUMN_LEGEND}", soft_wrap=True)
    counts = Counter(report.states.values())
    console.print(
        f"succeeded {counts[demo.SUCCEEDED]}, quarantined {counts[demo.QUARANTINED]}, after retries "
        f"{counts[demo.RETRIES_EXHAUSTED]}, never started {counts[demo.NEVER_STARTED]}, without a reason "
        f"{counts[demo.NO_REASON]}, lost or in flight {counts[demo.IN_FLIGHT]}, inconsistent "
        f"{counts[demo.INCONSISTENT]}; distinct effects {len(report.effects)}, duplicate effects "
        f"{sum(1 for n in report.effects.values() if n > 1)}; invocations failed as a whole {report.function_errors}"
    )
    console.print(f"  {TOTALS_LEGEND}", soft_wrap=True)
    if report.kills:
        console.print(
            f"crashes caused {len(report.kills)} (runtime SIGKILLed mid-batch), messages in those batches "
            f"{len(report.crashed)}, effects run again because the store had not confirmed their completion "
            f"when the crash hit {len(report.repeated_by_crash)}"
        )
    for problem in report.problems[:20]:
        console.print(f"[red]{problem}[/]")
    console.print("[green]All accounted for.[/]" if report.ok else f"[red]{len(report.problems)} problem(s).[/]")


class ProgressLines:
    """Progress as plain lines when the output is not a terminal (a log, a pipe), where a live bar
    shows only once, at the end: one line when the figures change, at most every ``every`` seconds."""

    def __init__(self, console: Console | None, every: float = 5.0, clock: Any = time.monotonic) -> None:
        self._console = console if console is not None and not console.is_terminal else None
        self._every = every
        self._clock = clock
        self._started = clock()
        self._last_at: float | None = None
        self._last = ""

    def show(self, line: str, *, force: bool = False) -> None:
        if self._console is None or line == self._last:
            return
        now = self._clock()
        if not force and self._last_at is not None and now - self._last_at < self._every:
            return
        self._console.print(f"  {now - self._started:5.0f} s  {line}", soft_wrap=True, markup=False)
        self._last_at, self._last = now, line


@command  # Ctrl-C or SIGTERM: the pipeline's processes stopped, one line, exit 130
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.fault_run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--template", type=Path, required=True)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    # Out of it come the late records' phase (~40 s) and the publishing (~30 s for 1,000 on a busy machine).
    parser.add_argument("--timeout", type=float, default=420.0, help="seconds to wait for every message to settle")
    parser.add_argument("--crashes", type=int, default=0, help="invocations whose runtime is SIGKILLed mid-batch")
    args = parser.parse_args(argv)
    if args.messages < 1:
        parser.error("--messages must be >= 1")
    if args.crashes < 0:
        parser.error("--crashes must be >= 0")
    # Wide enough for the table when the output is not a terminal (CI logs, a pipe).
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
    report = run(args.template, args.messages, args.seed, args.timeout, console=console, crashes=args.crashes)
    render(report, console)
    console.print(f"Logs: {_shown(LOG_DIR)}/ (function-N.log: each function instance's lines; moto.log: the server's)")
    return 0 if report.ok else 1


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is under it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
