"""Redrive: send the messages that were in the DLQ when it started back to their source queues.

Built for the person on call, whose cause may not be fixed yet:

- It works on a snapshot: the count of messages in the DLQ at the start, and each message it
  has seen by id. It stops once it has handled that many, or when the DLQ has nothing left to
  show it. A message that arrives during the run (a redriven one quarantined again, a new
  failure) is left in the DLQ: the run ends whatever keeps coming back.
- By default it skips the kinds that cannot succeed on a retry unless the producer or the code
  changed (``QuarantineKind.redrive_fixes`` is False: a body that is not JSON, an invalid envelope or
  payload, an unknown event type, a reused event id, an offloaded payload that is gone, too large or
  not text): redriven, they come straight back. ``kinds`` or ``include_poison`` choose otherwise.
- Each message it received is hidden (its visibility) while the run lasts and made visible again
  at the end, on Ctrl-C included: nothing stays hidden longer than the run.
- A redriven message that reaches the DLQ again during the run (or within ``watch_seconds``
  after the last move) is reported as having come straight back: its cause is not fixed.

Each move sends the message to its queue, then deletes it from the DLQ (at least once: an
interruption in between leaves a copy in both, which the consumer's idempotency acknowledges).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from operations.errors import one_line
from operations.letters import approximate_count, dead_letter_sources, decode, receive, release
from sqs_consumer.kinds import QuarantineKind
from sqs_consumer.models.trace import TRACE_HEADER_ATTRIBUTE, trace_attribute
from sqs_consumer.quarantine import ATTRIBUTE_PREFIX
from sqs_consumer.retry import queue_url_from_arn

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from operations.letters import DeadLetter

# A message in the DLQ without quarantine attributes: moved there by SQS's own redrive (a crash,
# a timeout on the last receive).
OUT_OF_RETRIES = "out_of_retries"
# Kinds that a redrive cannot fix unless the code (or the producer) changed: moved, they come
# straight back on their first receive (sqs_consumer.kinds says why for each).
POISON_KINDS = frozenset(kind.value for kind in QuarantineKind if not kind.redrive_fixes)
KNOWN_KINDS = frozenset({*(kind.value for kind in QuarantineKind), OUT_OF_RETRIES})

# Outcomes of one message in a redrive (the summary's columns).
MOVED = "moved"
WOULD_MOVE = "would move"
SKIPPED = "skipped"
NO_SOURCE = "no source queue"
FAILED = "not moved (error)"
CAME_BACK = "came straight back"
ARRIVED = "arrived during the run"

MIN_HOLD_SECONDS = 60
MAX_HOLD_SECONDS = 43_200  # SQS's longest visibility timeout (12 h)
DEFAULT_WATCH_SECONDS = 5.0


@dataclass(frozen=True)
class KindFilter:
    """Which kinds of dead letters to move: the chosen ones, or all but the poison kinds."""

    kinds: frozenset[str] | None = None
    include_poison: bool = False

    def selects(self, kind: str) -> bool:
        if self.kinds is not None:
            return kind in self.kinds
        return self.include_poison or kind not in POISON_KINDS

    def describe(self) -> str:
        if self.kinds is not None:
            return "only " + ", ".join(sorted(self.kinds))
        if self.include_poison:
            return "every kind"
        return "every kind but " + ", ".join(sorted(POISON_KINDS)) + " (--include-poison moves them too)"


@dataclass
class RedriveReport:
    """What a redrive did, by kind, destination and outcome."""

    snapshot: int = 0  # messages in the DLQ when the run started (SQS's approximate count)
    rows: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (kind, destination, outcome)
    failed: list[str] = field(default_factory=list)
    interrupted: bool = False
    dry_run: bool = False
    limit: int | None = None  # at most this many handled (--max)

    def add(self, kind: str, destination: str, outcome: str) -> None:
        self.rows[(kind, destination, outcome)] += 1

    def count(self, outcome: str) -> int:
        return sum(n for (_, _, what), n in self.rows.items() if what == outcome)

    def kinds(self, outcome: str) -> Counter[str]:
        kinds: Counter[str] = Counter()
        for (kind, _, what), n in self.rows.items():
            if what == outcome:
                kinds[kind] += n
        return kinds

    @property
    def total(self) -> int:
        """Messages moved (or, in a dry run, that would move)."""
        return self.count(WOULD_MOVE if self.dry_run else MOVED)

    @property
    def handled(self) -> int:
        """Messages of the snapshot dealt with so far (moved, skipped, or left with a reason)."""
        return sum(n for (_, _, what), n in self.rows.items() if what not in (CAME_BACK, ARRIVED))


@dataclass(frozen=True)
class _Held:
    """A received message: hidden until the run gives it back."""

    receipt_handle: str


def hold_seconds(snapshot: int, rate: int, watch_seconds: float) -> int:
    """How long each received message stays hidden: the run's expected length, with a margin.

    Everything is given back when the run ends (Ctrl-C included), so this matters only if the
    process is killed: then the messages reappear after this long.
    """
    expected = math.ceil(snapshot / rate) if rate else 0
    return max(MIN_HOLD_SECONDS, min(MAX_HOLD_SECONDS, 2 * expected + MIN_HOLD_SECONDS + math.ceil(watch_seconds)))


def redrive(  # each keyword is one knob of the CLI, or a clock for the tests
    client: SQSClient,
    dlq_url: str,
    *,
    endpoint_url: str | None = None,
    destination_arn: str | None = None,
    kinds: KindFilter | None = None,
    rate: int = 50,
    limit: int | None = None,
    dry_run: bool = False,
    wait_seconds: int = 2,
    watch_seconds: float = DEFAULT_WATCH_SECONDS,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    wall_clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    on_progress: Callable[[RedriveReport], None] = lambda _: None,
) -> RedriveReport:
    """Send the messages in the DLQ now back to their source (or ``destination_arn``); see the module doc.

    At most ``rate`` messages a second and ``limit`` messages in all. Returns when the snapshot is
    handled, the DLQ shows nothing more, or on Ctrl-C (``interrupted``): never an exception for that.
    """
    chosen = kinds or KindFilter()
    sources = dead_letter_sources(client, dlq_url)
    fallback = sources[0] if len(sources) == 1 else None
    count = approximate_count(client, dlq_url)
    report = RedriveReport(snapshot=count.visible + count.in_flight, dry_run=dry_run, limit=limit)
    goal = report.snapshot if limit is None else min(report.snapshot, limit)
    started_ms = wall_clock_ms()
    hold = hold_seconds(goal, rate, watch_seconds)
    mover = _Mover(client, dlq_url, chosen, report, destination_arn, endpoint_url, fallback)
    run = _Run(report, mover, goal=goal, rate=rate, watch_seconds=watch_seconds, started_ms=started_ms,
               clock=clock, sleep=sleep)  # fmt: skip
    try:
        while True:
            snapshot_done = report.handled >= goal
            if snapshot_done and run.watched():
                break
            wanted = 10 if snapshot_done else min(10, goal - report.handled)
            messages = receive(client, dlq_url, wanted, hold, wait_seconds)
            if not messages and not snapshot_done:
                break  # a long poll found nothing visible: the rest of the count is held elsewhere
            if not messages:
                run.watch()
            for message in run.hold(messages):
                run.handle(message)
                on_progress(report)
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        release(client, dlq_url, [h.receipt_handle for h in run.held.values()])
    return report


class _Run:
    """One redrive's progress through its snapshot: what it holds, what it sent, its pace."""

    def __init__(
        self,
        report: RedriveReport,
        mover: _Mover,
        *,
        goal: int,
        rate: int,
        watch_seconds: float,
        started_ms: int,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        self.report = report
        self.mover = mover
        self.goal = goal
        self.rate = rate
        self.watch_seconds = watch_seconds
        self.started_ms = started_ms
        self.clock = clock
        self.sleep = sleep
        self.held: dict[str, _Held] = {}  # DLQ message id -> how to give it back
        self.sent: set[str] = set()  # ids the moved messages got in their destination queues
        self.moved_at: float | None = None
        self.started = clock()

    def watched(self) -> bool:
        """Whether the moved messages were watched long enough for any coming straight back."""
        return self.moved_at is None or self.clock() - self.moved_at >= self.watch_seconds

    def watch(self) -> None:
        """Nothing received: pause a little while still watching for returns."""
        if self.moved_at is not None:
            self.sleep(max(0.0, min(0.5, self.watch_seconds - (self.clock() - self.moved_at))))

    def hold(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Keep every received message to give back, from the receive on, so that an interruption
        anywhere gives each one back; the ones not seen before (one seen before reappeared once its
        hold ran out: hidden again only)."""
        fresh = [message for message in messages if message["MessageId"] not in self.held]
        self.held.update({message["MessageId"]: _Held(message["ReceiptHandle"]) for message in messages})
        return fresh

    def handle(self, message: dict[str, Any]) -> None:
        """Report a message not of the snapshot; move one of it, until the goal, at the rate."""
        report = self.report
        letter = decode(message)
        kind = letter.kind or OUT_OF_RETRIES
        seen = _not_of_the_snapshot(message, letter, self.sent, self.started_ms)
        if seen is not None:
            report.add(kind, letter.source_queue_arn or "-", seen)
        elif report.handled < self.goal:  # past it (--max), a message is left there, said by the count
            moved = self.mover.handle(message, letter, kind)
            if moved is not None:
                self.held.pop(message["MessageId"])  # deleted from the DLQ: nothing to give back
                self.sent.add(moved)
                self.moved_at = self.clock()
                # Pace to the rate: the n-th message leaves no earlier than n / rate seconds in.
                ahead = report.total / self.rate - (self.clock() - self.started)
                if ahead > 0:
                    self.sleep(ahead)


def _not_of_the_snapshot(message: dict[str, Any], letter: DeadLetter, sent: set[str], started_ms: int) -> str | None:
    """CAME_BACK or ARRIVED for a message that was not in the DLQ when the run started, else None."""
    if letter.source_message_id in sent or message["MessageId"] in sent:
        return CAME_BACK
    sent_at = int(message.get("Attributes", {}).get("SentTimestamp", "0") or 0)
    return ARRIVED if sent_at > started_ms else None


@dataclass(frozen=True)
class _Mover:
    """Decides and does each snapshot message: skip, move, or say why it cannot."""

    client: SQSClient
    dlq_url: str
    chosen: KindFilter
    report: RedriveReport
    destination_arn: str | None
    endpoint_url: str | None
    fallback: str | None  # the DLQ's only source queue, for messages that name none

    def handle(self, message: dict[str, Any], letter: DeadLetter, kind: str) -> str | None:
        """The id the message got in its destination when it moved, else None."""
        report = self.report
        arn = self.destination_arn or letter.source_queue_arn
        url = queue_url_from_arn(arn, self.endpoint_url) if arn else self.fallback
        destination = arn or url or "-"
        if not self.chosen.selects(kind):
            report.add(kind, destination, SKIPPED)
            return None
        if url is None:
            report.add(kind, destination, NO_SOURCE)
            return None
        if report.dry_run:
            report.add(kind, destination, WOULD_MOVE)
            return None
        try:
            new_id = move(self.client, self.dlq_url, url, message)
        except Exception as exc:  # left in the DLQ, reported
            report.failed.append(f"{letter.source_message_id}: {one_line(exc)}")
            report.add(kind, destination, FAILED)
            return None
        report.add(kind, destination, MOVED)
        return new_id


def move(client: SQSClient, dlq_url: str, destination_url: str, message: dict[str, Any]) -> str:
    """Send one message to its destination with its own attributes, then delete it from the DLQ.

    Returns the id SQS gave the copy in the destination (a quarantined copy names it when it
    comes back).
    """
    params: dict[str, Any] = {"QueueUrl": destination_url, "MessageBody": message["Body"]}
    originals = {
        name: {key: value[key] for key in ("DataType", "StringValue", "BinaryValue") if key in value}
        for name, value in message.get("MessageAttributes", {}).items()
        if not name.startswith(ATTRIBUTE_PREFIX)
    }
    if originals:
        params["MessageAttributes"] = originals
    system = message.get("Attributes", {})
    if system.get(TRACE_HEADER_ATTRIBUTE):  # the event stays in its trace
        params["MessageSystemAttributes"] = trace_attribute(system[TRACE_HEADER_ATTRIBUTE])
    if destination_url.endswith(".fifo"):
        params["MessageGroupId"] = system.get("MessageGroupId") or "redrive"
        params["MessageDeduplicationId"] = message["MessageId"]
    new_id = client.send_message(**params)["MessageId"]
    client.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
    return new_id


def kinds_table() -> str:
    """docs/operations.md's table of quarantine kinds (tests/unit/test_quarantine_kinds.py keeps the two equal)."""
    rows = ["| `quarantine.kind` | means | `sqs-dlq redrive` moves it |", "|---|---|---|"]
    for kind in QuarantineKind:
        moves = "yes" if kind.redrive_fixes else "no: `--include-poison` or `--kind`"
        rows.append(f"| `{kind}` | {kind.description} | {moves} |")
    rows.append(f"| `{OUT_OF_RETRIES}` (no `quarantine.*` attributes) | moved by SQS's own redrive: a crash or a "
                "timeout on its last allowed receive | yes |")  # fmt: skip
    return "\n".join(rows)
