"""``make rehearse FROM=<git ref>``: an upgrade from a release rehearsed on LocalStack, with messages waiting.

The ref's tree and the working tree are synthesized as ``make upgrade-check`` does (infra/upgrade_check.py).
Both templates are cut to what LocalStack community deploys (infra/rehearsal_template.py says what is
left out). On a LocalStack of its own (infra/localstack.py) the rehearsal creates the stack from the
ref's template, puts messages in every queue of it (the consumer's queue and its DLQ), updates the stack
to the working tree's template, and reads every queue the stack holds: each message must be in the queue
of the same logical id, and that queue must be the same one (its URL unchanged). Figures: messages per
queue before and after, and the time of each step.

Without FROM the ref is the last release tag (``v*``), or ``HEAD~`` when there is none. Exit status: 0
when every message is where it was; 1 when one is lost or its queue was replaced or deleted, or the
update failed; 2 for bad input (an unknown ref, a tree that does not synthesize, LocalStack not starting).
LocalStack is lenient (names, regions, no rollback of a failed create): a smoke test of an upgrade,
not proof; ``make upgrade-check`` reads CloudFormation's replacement rules.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from infra import localstack
from infra.identity import ROOT, construct_path
from infra.rehearsal_stack import StackOperator, boto_clients
from infra.rehearsal_template import Filtered, filter_template
from infra.upgrade_check import SCRATCH, UpgradeCheckError, export, resolve, stages_of, synthesize

MESSAGES_PER_QUEUE = 20
T = TypeVar("T")


@dataclass(frozen=True)
class QueueOutcome:
    """One queue of the old template after the update."""

    logical_id: str
    path: str
    sent: int
    found: int  # of the sent messages, in the queue the stack now holds under the same logical id
    before_url: str
    after_url: str | None  # None: the logical id is gone from the stack
    left_behind: int  # of the sent messages, still in the old queue when it is no longer the stack's

    @property
    def kept(self) -> bool:
        return self.found == self.sent and self.after_url == self.before_url

    def line(self) -> str:
        figures = f"  {self.path} ({self.logical_id}): {self.sent} before, {self.found} after"
        if self.kept:
            return f"{figures}, same queue"
        if self.after_url is None:
            where = "its logical id is gone from the stack (the queue deleted or orphaned)"
        elif self.after_url != self.before_url:
            where = f"replaced: the stack's queue is now {self.after_url.rsplit('/', 1)[-1]}"
        else:
            where = "same queue"
        return f"{figures}, LOST {self.sent - self.found}: {where}; {self.left_behind} left behind in the old queue"


@dataclass
class Rehearsal:
    """What a rehearsal did and found."""

    create_status: str = ""
    update_status: str = ""
    update_problems: list[str] = field(default_factory=list)
    queues: list[QueueOutcome] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        return sum(q.sent - q.found for q in self.queues)

    @property
    def ok(self) -> bool:
        return self.update_status in {"UPDATE_COMPLETE", "NO_CHANGE"} and all(q.kept for q in self.queues)


def _timed(rehearsal: Rehearsal, step: str, work: Callable[[], T]) -> T:
    started = time.monotonic()
    try:
        return work()
    finally:
        rehearsal.timings[step] = time.monotonic() - started


def rehearse_templates(
    old: Mapping[str, Any], new: Mapping[str, Any], endpoint: localstack.Endpoint, stack_name: str,
    messages: int = MESSAGES_PER_QUEUE,
) -> Rehearsal:  # fmt: skip
    """Create ``stack_name`` from ``old`` on LocalStack, fill its queues, update it to ``new``, account."""
    operator = StackOperator(boto_clients(endpoint.url), stack_name)
    rehearsal = Rehearsal()
    rehearsal.create_status = _timed(rehearsal, "create", lambda: operator.create(old))
    if rehearsal.create_status != "CREATE_COMPLETE":
        raise UpgradeCheckError(f"the old template does not deploy on LocalStack: {operator.problems()}")
    before = operator.queues()
    sent = _timed(rehearsal, "send", lambda: {lid: operator.fill(url, messages) for lid, url in before.items()})
    rehearsal.update_status = _timed(rehearsal, "update", lambda: operator.update(new))
    if rehearsal.update_status not in {"UPDATE_COMPLETE", "NO_CHANGE"}:
        rehearsal.update_problems = operator.problems()
    # A logical id the new template does not have is gone, whatever LocalStack lists: it sometimes keeps
    # the old resource in the stack when a new one of the same name takes its queue.
    after = {lid: url for lid, url in operator.queues().items() if lid in new["Resources"]}
    rehearsal.queues = _timed(rehearsal, "read", lambda: _account(operator, old, sent, before, after))
    return rehearsal


def _account(
    operator: StackOperator, old: Mapping[str, Any], sent: Mapping[str, set[str]],
    before: Mapping[str, str], after: Mapping[str, str],
) -> list[QueueOutcome]:  # fmt: skip
    outcomes = []
    for logical_id, url in sorted(before.items()):
        now = after.get(logical_id)
        found = operator.drain(now) & sent[logical_id] if now else set()
        behind = operator.drain(url) & sent[logical_id] if now != url else set()
        path = construct_path(old["Resources"][logical_id])
        outcomes.append(QueueOutcome(logical_id, path, len(sent[logical_id]), len(found), url, now, len(behind)))
    return outcomes


# The command.


def default_ref(repo: Path = ROOT) -> str:
    """The last release tag (v*) reachable from HEAD, else HEAD~ (the previous commit)."""
    described = subprocess.run(  # noqa: S603
        ["git", "-C", str(repo), "describe", "--tags", "--abbrev=0", "--match", "v*"],  # noqa: S607
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return described.stdout.strip() if described.returncode == 0 else "HEAD~"


def templates(ref: str, stage: str, tree: Path = ROOT) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The stage's template at ``ref`` and in the working tree, and the ref's short commit."""
    commit = resolve(ref, tree)
    (tree / SCRATCH).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rehearse-", dir=tree / SCRATCH) as scratch:
        old_tree = Path(scratch) / "tree"
        old_tree.mkdir()
        export(commit, old_tree, tree)
        for label, folder in (("the working tree", tree), (f"{ref} ({commit[:12]})", old_tree)):
            if stage not in stages_of(folder):
                raise UpgradeCheckError(f"{label} has no stage {stage!r}")
        jobs = [(old_tree, "old", f"{ref} ({commit[:12]})"), (tree, "new", "the working tree")]
        with ThreadPoolExecutor(2) as pool:
            old, new = pool.map(lambda job: synthesize(job[0], stage, Path(scratch) / job[1], job[2]), jobs)
    return old, new, commit[:12]


def report(rehearsal: Rehearsal, old: Filtered, new: Filtered, where: str) -> str:
    lines = [f"rehearse: {where}", f"  left out of the old template: {old.summary()}",
             f"  left out of the new template: {new.summary()}",
             f"  create: {rehearsal.create_status}; update: {rehearsal.update_status}"]  # fmt: skip
    lines += [f"    {problem}" for problem in rehearsal.update_problems]
    lines += [outcome.line() for outcome in rehearsal.queues]
    sent = sum(q.sent for q in rehearsal.queues)
    times = ", ".join(f"{step} {seconds:.1f} s" for step, seconds in rehearsal.timings.items())
    verdict = "no message lost" if rehearsal.ok else f"FAILED, {rehearsal.lost} message(s) lost"
    lines.append(f"rehearse: {verdict} ({sent - rehearsal.lost} of {sent} where they were); {times}")
    return "\n".join(lines)


def run(ref: str, stage: str, messages: int) -> tuple[Rehearsal, str]:
    """Rehearse the upgrade of ``stage`` from ``ref`` to the working tree; the outcome and its report."""
    timings: dict[str, float] = {}
    started = time.monotonic()
    old, new, commit = templates(ref, stage)
    timings["synth"] = time.monotonic() - started
    old_filtered, new_filtered = filter_template(old), filter_template(new)
    started = time.monotonic()
    with localstack.running() as endpoint:
        timings["LocalStack start"] = time.monotonic() - started
        rehearsal = rehearse_templates(
            old_filtered.template, new_filtered.template, endpoint, f"SqsConsumer-{stage}", messages
        )
    rehearsal.timings = {**timings, **rehearsal.timings}
    where = f"stage {stage} from {ref} ({commit}) to the working tree, on LocalStack"
    return rehearsal, report(rehearsal, old_filtered, new_filtered, where)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.rehearse", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--from", dest="ref", default="", help="the release deployed now (default: the last v* tag, else HEAD~)"
    )
    parser.add_argument("--stage", default="dev", help="a stage of cdk.json (default: dev)")
    parser.add_argument("--messages", type=int, default=MESSAGES_PER_QUEUE, help="messages put in each queue")
    args = parser.parse_args(argv)
    if args.messages < 1:
        parser.error("--messages must be at least 1")
    ref = args.ref or default_ref()
    try:
        rehearsal, text = run(ref, args.stage, args.messages)
    except (UpgradeCheckError, localstack.LocalStackError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    sys.stdout.write(text + "\n")
    return 0 if rehearsal.ok else 1


if __name__ == "__main__":
    sys.exit(main())
