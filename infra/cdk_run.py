"""The CDK CLI, stopped whole: `python -m infra.cdk_run synth --quiet -c stage=dev` runs `cdk synth ...`.

The CDK CLI (node) runs the app (`python3 app.py`), which runs jsii's node runtime: three processes.
A stop (SIGTERM to make, which passes it on to its child; Ctrl-C) reached the CLI alone: the app went on
for seconds, writing cdk.out after make had returned, and the CLI's `cdk.out/synth.lock` stayed behind.
Here the CLI runs in a process group of its own; SIGINT and SIGTERM go to the whole group, which is
waited for (SIGKILLed after a grace), then the lock files it left are removed and one line says so.
Exit status: the CLI's, or 128 + the signal (130 for Ctrl-C, 143 for SIGTERM).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

PROC = Path("/proc")
GRACE_SECONDS = 5.0
# What the CDK CLI locks cdk.out with while it runs (a writer's synth.lock, each reader's read.*.lock).
LOCK_PATTERNS = ("synth.lock", "read.*.lock")


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    cdk = shutil.which("cdk") or "cdk"
    received: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = {signum: signal.signal(signum, forward) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        process = subprocess.Popen([cdk, *arguments], start_new_session=True)  # noqa: S603  # the CDK CLI
        while process.poll() is None and not received:
            time.sleep(0.05)
        if not received:
            return process.returncode
        signum = received[0]
        stop_group(process, signum)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    removed = remove_locks(output_dir(arguments))
    left = f"; removed {', '.join(removed)}" if removed else ""
    print(f"cdk {' '.join(arguments[:1])}: stopped (the CDK CLI and its app){left}", file=sys.stderr)
    return 128 + signum


def stop_group(process: subprocess.Popen[bytes], signum: int, grace: float = GRACE_SECONDS) -> None:
    """Sends ``signum`` to the CLI's process group and waits until none of it is left (SIGKILL after ``grace``)."""
    group = process.pid  # a new session: its leader's pid is the group's id
    _signal_group(group, signum)
    deadline = time.monotonic() + grace
    while _group_alive(group, process) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _group_alive(group, process):
        _signal_group(group, signal.SIGKILL)
        while _group_alive(group, process):
            time.sleep(0.05)


def _signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signum)


def _group_alive(group: int, process: subprocess.Popen[bytes]) -> bool:
    process.poll()  # reaps the CLI itself; the app and jsii, once orphaned, are reaped by init
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    if not PROC.is_dir():  # macOS: a group of zombies only lasts until launchd reaps them
        return True
    return any(_running_in(int(entry.name), group) for entry in PROC.iterdir() if entry.name.isdigit())


def _running_in(pid: int, group: int) -> bool:
    """``pid`` is in ``group`` and not a zombie (a zombie has stopped; its parent reaps it)."""
    try:
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return int(fields[2]) == group and fields[0] != "Z"


def output_dir(arguments: Sequence[str]) -> Path:
    """The cloud assembly's folder: ``-o``/``--output`` among the CLI's arguments, else cdk.out."""
    for index, argument in enumerate(arguments):
        if argument in ("-o", "--output") and index + 1 < len(arguments):
            return Path(arguments[index + 1])
        if argument.startswith("--output="):
            return Path(argument.removeprefix("--output="))
    return Path("cdk.out")


def remove_locks(outdir: Path) -> list[str]:
    """Removes the CDK CLI's lock files from ``outdir``; their paths."""
    removed = []
    for pattern in LOCK_PATTERNS:
        for lock in outdir.glob(pattern):
            lock.unlink(missing_ok=True)
            removed.append(str(lock))
    return removed


if __name__ == "__main__":
    sys.exit(main())
