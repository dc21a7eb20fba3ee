"""Dead-letter queue operations: peek (decoded, nothing deleted), redrive, and status.

    sqs-dlq peek     --queue-url DLQ_URL [--max 50] [--json]
    sqs-dlq redrive  --dlq-arn DLQ_ARN [--dry-run] [--kind KIND ...] [--include-poison]
                     [--destination-arn ARN] [--rate 10] [--max N] [--watch 5]
    sqs-dlq status   --dlq-arn DLQ_ARN

(`make setup` installs sqs-dlq into .venv/bin; `python -m operations.dlq` is the same.)
--endpoint-url (the local moto server) and --region go before or after the command.

Redrive moves the messages that are in the DLQ when it starts back to where they came from,
then stops, whatever comes back: a quarantined copy names its source queue in its
`quarantine.source_queue_arn` attribute; a message that reached the DLQ through SQS's redrive
goes to the DLQ's source queue (when it has one). SQS's own message move task cannot do the
first: it returns a message to its source only when SQS moved it there, and quarantined copies
arrive by SendMessage. By default it leaves in the DLQ the kinds that a retry cannot fix
unless the producer or the code changed (see --kind below); --include-poison moves them too,
--kind picks kinds.
It shows its progress, and its summary (by kind, destination and outcome, with what came
straight back) at the end and on Ctrl-C, which gives back every message it held.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from operations.cli import INTERRUPTED_EXIT, ArgumentParser, command
from operations.errors import hint, one_line
from operations.letters import DeadLetter, approximate_count, decode, receive, release
from operations.redrive import (
    ARRIVED,
    CAME_BACK,
    DEFAULT_WATCH_SECONDS,
    FAILED,
    KNOWN_KINDS,
    MOVED,
    NO_SOURCE,
    OUT_OF_RETRIES,
    POISON_KINDS,
    SKIPPED,
    WOULD_MOVE,
    KindFilter,
    RedriveReport,
    redrive,
)
from sqs_consumer.retry import queue_url_from_arn

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

PEEK_VISIBILITY_SECONDS = 30
# Long polling asks every SQS server; a short poll samples a few and can answer "empty" early.
WAIT_SECONDS = 2
DEFAULT_RATE = 50
MAX_STATUS_DETAIL = 80


def peek(client: SQSClient, queue_url: str, limit: int = 1_000, wait_seconds: int = WAIT_SECONDS) -> list[DeadLetter]:
    """Read up to ``limit`` messages and make them visible again at once: nothing is deleted.

    Each read hides a message for a short while so the next read reaches further; the
    reads long-poll, so an empty answer means the queue has nothing visible left. All are
    then made visible again with ChangeMessageVisibility.
    """
    letters: dict[str, DeadLetter] = {}
    handles: list[str] = []
    try:
        while len(letters) < limit:
            messages = receive(client, queue_url, limit - len(letters), PEEK_VISIBILITY_SECONDS, wait_seconds)
            if not messages:
                break
            for message in messages:
                letter = decode(message)
                letters[letter.source_message_id] = letter
                handles.append(message["ReceiptHandle"])
    finally:
        release(client, queue_url, handles)
    return list(letters.values())


def redrive_status(client: SQSClient, dlq_arn: str) -> list[dict[str, Any]]:
    """SQS's message move tasks of this DLQ (started from the console or by SQS's API)."""
    return [dict(task) for task in client.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=10).get("Results", [])]


def move_tasks_unavailable(exc: BaseException) -> str:
    """One readable line for an endpoint without move tasks (moto answers with an HTML error page)."""
    response = getattr(exc, "response", None)
    error = response.get("Error", {}) if isinstance(response, dict) else {}
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") if isinstance(response, dict) else None
    message = str(error.get("Message", "")) if error else str(exc)
    code = str(error.get("Code", "")) if error else type(exc).__name__
    readable = message and "<" not in message and len(message) <= MAX_STATUS_DETAIL
    detail = f"{code}: {message}" if readable else (f"HTTP {status}" if status else code)
    return f"SQS move tasks: not available from this endpoint ({detail}); redrive does not need them"


def summary_table(report: RedriveReport) -> Table:
    """The redrive's outcome by kind and destination."""
    title = "Redrive (dry run: nothing moved)" if report.dry_run else "Redrive"
    if report.interrupted:
        title += " — interrupted"
    table = Table(title=title)
    table.add_column("kind")
    table.add_column("destination queue", overflow="fold")
    table.add_column("outcome")
    table.add_column("messages", justify="right")
    for (kind, destination, outcome), n in sorted(report.rows.items()):
        style = "red" if outcome in (CAME_BACK, FAILED) else None
        table.add_row(kind, destination.rsplit(":", 1)[-1], outcome, str(n), style=style)
    return table


def summary_lines(report: RedriveReport, rate: int, kinds: KindFilter) -> list[str]:
    """What the on-call engineer needs to read after the table: totals, and what to do next."""
    verb = "would move" if report.dry_run else "moved"
    targets = Counter[str]()
    for (_, destination, outcome), n in report.rows.items():
        if outcome in (MOVED, WOULD_MOVE):
            targets[destination] += n
    where = ", ".join(f"{n} to {arn}" for arn, n in targets.items()) or "nothing"
    moved_kinds = _kinds(report.kinds(WOULD_MOVE if report.dry_run else MOVED))
    lines = [
        f"{'dry run: ' if report.dry_run else ''}{verb} {report.total} message(s) at {rate} msg/s: {where}"
        + (f" ({moved_kinds})" if moved_kinds else "")
        + f"; {report.handled} of the {report.snapshot} in the DLQ at the start handled"
    ]
    skipped = report.kinds(SKIPPED)
    if skipped:
        lines.append(
            f"skipped {sum(skipped.values())} ({_kinds(skipped)}): moved now they would come straight back; "
            "fix the code or the producer, then pass --include-poison or --kind"
        )
    elif report.dry_run and (poison := {k: n for k, n in report.kinds(WOULD_MOVE).items() if k in POISON_KINDS}):
        lines.append(f"{sum(poison.values())} would come straight back unless the code changed ({_kinds(poison)})")
    came_back = report.kinds(CAME_BACK)
    if came_back:
        lines.append(
            f"came straight back: {sum(came_back.values())} ({_kinds(came_back)}): their cause is not fixed; "
            "they are in the DLQ again (sqs-dlq peek shows why)"
        )
    if report.limit is not None and report.handled >= report.limit and report.snapshot > report.handled:
        lines.append(
            f"left {report.snapshot - report.handled} of the {report.snapshot} in the DLQ (--max {report.limit})"
        )
    arrived = report.count(ARRIVED)
    if arrived:
        lines.append(f"{arrived} message(s) arrived in the DLQ during the run and were left there")
    if report.count(NO_SOURCE):
        lines.append(f"{report.count(NO_SOURCE)} message(s) have no known source queue: pass --destination-arn")
    if report.interrupted:
        lines.append("interrupted: every message not yet moved is visible in the DLQ again")
    lines.append(f"moving: {kinds.describe()}")
    return lines


def _kinds(counts: Counter[str] | dict[str, int]) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _parser() -> argparse.ArgumentParser:
    # The connection options are accepted before or after the command.
    common = ArgumentParser(add_help=False)
    common.add_argument("--endpoint-url", default=argparse.SUPPRESS, help="an SQS endpoint, e.g. the local moto server")
    common.add_argument("--region", default=argparse.SUPPRESS, help="AWS region (default: environment or profile)")
    parser = ArgumentParser(prog="sqs-dlq", description=__doc__, parents=[common],
                             formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True)
    peek_parser = commands.add_parser(
        "peek", parents=[common], help="show DLQ messages with their quarantine reasons; deletes nothing"
    )
    peek_parser.add_argument("--queue-url", required=True, help="the DeadLetterQueueUrl output of the stack")
    peek_parser.add_argument("--max", type=int, default=50, help="how many messages to show (default 50)")
    peek_parser.add_argument("--json", action="store_true", help="one JSON object per line")
    move = commands.add_parser("redrive", parents=[common], help="send DLQ messages back to their source queue")
    move.add_argument("--dlq-arn", required=True, help="the DeadLetterQueueArn output of the stack")
    move.add_argument("--destination-arn", help="default: each message's source queue")
    move.add_argument("--rate", type=int, default=DEFAULT_RATE, help=f"messages per second (default {DEFAULT_RATE})")
    move.add_argument("--max", type=int, help="move at most this many (default: all)")
    move.add_argument("--dry-run", action="store_true", help="show what would move; move nothing")
    kinds, poison = ", ".join(sorted(KNOWN_KINDS)), ", ".join(sorted(POISON_KINDS))
    move.add_argument("--kind", action="append", choices=sorted(KNOWN_KINDS), dest="kinds", metavar="KIND",
                      help=f"move only this kind (repeatable): one of {kinds} ({OUT_OF_RETRIES}: moved there by "
                      f"SQS). Left unless asked for: {poison}")  # fmt: skip
    move.add_argument("--include-poison", action="store_true",
                      help="also move the kinds a retry cannot fix unless the code changed")  # fmt: skip
    move.add_argument("--watch", type=float, default=DEFAULT_WATCH_SECONDS,
                      help="seconds to watch for moved messages coming straight back "
                           f"(default {DEFAULT_WATCH_SECONDS:g})")  # fmt: skip
    status = commands.add_parser("status", parents=[common], help="the DLQ's count and its SQS move tasks")
    status.add_argument("--dlq-arn", required=True, help="the DeadLetterQueueArn output of the stack")
    return parser


@command
def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if getattr(args, "max", None) is not None and args.max < 1:
        parser.error("--max must be >= 1")
    if getattr(args, "rate", None) is not None and not 1 <= args.rate <= 500:
        parser.error("--rate must be between 1 and 500")
    if getattr(args, "watch", None) is not None and not 0 <= args.watch <= 600:
        parser.error("--watch must be between 0 and 600 seconds")
    if getattr(args, "kinds", None) and args.include_poison:
        parser.error("--kind and --include-poison do not go together: --kind names every kind to move")
    for name in ("dlq_arn", "destination_arn"):
        value = getattr(args, name, None)
        if value is not None and (not value.startswith("arn:") or value.count(":") < 5):
            parser.error(f"--{name.replace('_', '-')} must be an SQS queue ARN (arn:aws:sqs:REGION:ACCOUNT:NAME)")
    try:
        return _run(args)
    except BrokenPipeError:  # the reader went away: ended quietly by @command
        raise
    except Exception as exc:  # one line that says what to do, never a traceback
        print(f"{parser.prog} {args.command}: {one_line(exc)}{hint(exc)}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    import boto3  # noqa: PLC0415  # only once the arguments are valid

    # botocore's own variables also point every client at another endpoint (the local pipeline).
    endpoint_url = (
        getattr(args, "endpoint_url", None)
        or os.environ.get("AWS_ENDPOINT_URL_SQS")
        or os.environ.get("AWS_ENDPOINT_URL")
    )
    client = boto3.client("sqs", endpoint_url=endpoint_url, region_name=getattr(args, "region", None))
    if args.command == "peek":
        return _peek(client, args)
    dlq_url = queue_url_from_arn(args.dlq_arn, endpoint_url)
    if args.command == "redrive":
        return _redrive(client, dlq_url, endpoint_url, args)
    print(f"{args.dlq_arn}: {approximate_count(client, dlq_url).describe()}")
    try:
        tasks = redrive_status(client, args.dlq_arn)
    except Exception as exc:  # moto, and some partitions, have no move tasks
        print(move_tasks_unavailable(exc))
        return 0
    for task in tasks:
        print(json.dumps(task, default=str))
    if not tasks:
        print("SQS move tasks: none")
    return 0


PEEK_COLUMNS = ("source_message_id", "event_id", "event_type", "trace_id", "why")


def _peek(client: SQSClient, args: argparse.Namespace) -> int:
    letters = peek(client, args.queue_url, args.max)
    count = approximate_count(client, args.queue_url)
    if not args.json:
        print(_peek_row(*PEEK_COLUMNS))
    for letter in letters:
        if args.json:
            print(json.dumps({**letter.__dict__, "trace_id": letter.trace_id}))
        else:
            why = f"{letter.kind}: {letter.reason}" if letter.quarantined else "out of retries"
            print(_peek_row(letter.source_message_id, letter.event_id or "-", letter.event_type or "-",
                             letter.trace_id or "-", why))  # fmt: skip
    kinds = Counter(letter.kind or OUT_OF_RETRIES for letter in letters)
    summary = ", ".join(f"{n} {k}" for k, n in kinds.most_common())
    print(f"{len(letters)} message(s): {summary or 'none'}; the queue holds {count.describe()}", file=sys.stderr)
    return 0


def _peek_row(message_id: str, event_id: str, event_type: str, trace: str, why: str) -> str:
    # Message ids are 36 characters, trace ids 35; event ids and types pad to a common width and never wrap.
    return f"{message_id:<36}  {event_id:<24} {event_type:<20} {trace:<35} {why}"


def _redrive(client: SQSClient, dlq_url: str, endpoint_url: str | None, args: argparse.Namespace) -> int:
    kinds = KindFilter(frozenset(args.kinds) if args.kinds else None, args.include_poison)
    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False)
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[detail]}"), console=err, transient=True,
    )  # fmt: skip
    task = progress.add_task("dry run" if args.dry_run else "redrive", total=None, detail="")

    def show(report: RedriveReport) -> None:
        detail = f"{report.total} {'would move' if args.dry_run else 'moved'}, {report.count(SKIPPED)} skipped"
        if report.count(CAME_BACK):
            detail += f", {report.count(CAME_BACK)} came straight back"
        progress.update(task, total=report.snapshot, completed=report.handled, detail=detail)

    try:
        with progress:
            report = redrive(
                client,
                dlq_url,
                endpoint_url=endpoint_url,
                destination_arn=args.destination_arn,
                kinds=kinds,
                rate=args.rate,
                limit=args.max,
                dry_run=args.dry_run,
                watch_seconds=args.watch,
                on_progress=show,
            )
    except KeyboardInterrupt:  # before the first receive: nothing was held or moved
        print("interrupted before anything was moved", file=sys.stderr)
        return INTERRUPTED_EXIT
    if report.rows:
        out.print(summary_table(report))
    for line in summary_lines(report, args.rate, kinds):
        out.print(line, markup=False)
    for failure in report.failed[:20]:
        print(f"not moved: {failure}", file=sys.stderr)
    if report.interrupted:
        return INTERRUPTED_EXIT
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
