"""Crashes as Lambda has them, for the fault run: a busy instance's runtime process is SIGKILLed.

A timeout, an out-of-memory kill or a runtime crash ends the process wherever it is. Lambda then
reports ``Runtime.ExitError``, the event source mapping deletes nothing of that batch, and its
messages return after the visibility timeout, by when the invocation's in-progress idempotency
records have expired. The emulator does the same (emulator.py), and starts a new runtime for the
next invocation.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from local.emulator import FunctionEmulator

# How long to look for an instance that is invoking, before giving a crash up.
BUSY_WAIT_SECONDS = 60.0


@dataclass(frozen=True)
class Kill:
    instance: int
    at: float  # wall clock, seconds: the effects' log lines are stamped with it


class CrashInjector:
    """Kills ``count`` invocations at random moments, a few seconds apart; records when and where."""

    def __init__(
        self,
        functions: Sequence[FunctionEmulator],
        count: int,
        seed: int,
        *,
        pause_seconds: tuple[float, float] = (1.0, 4.0),
        moment_seconds: tuple[float, float] = (0.0, 0.5),
    ) -> None:
        self._functions = list(functions)
        self._count = count
        self._random = random.Random(seed)  # noqa: S311  # reproducible moments, not a secret
        self._pause = pause_seconds
        self._moment = moment_seconds
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="crashes", daemon=True)
        self.kills: list[Kill] = []

    def start(self) -> None:
        """Start killing (once: a second call does nothing)."""
        if self._count and not self._thread.is_alive() and self._thread.ident is None:
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(BUSY_WAIT_SECONDS)

    def _run(self) -> None:
        for _ in range(self._count):
            if self._stopping.wait(self._random.uniform(*self._pause)):
                return
            self._kill_one()

    def _kill_one(self) -> None:
        """Kill one busy instance somewhere in its invocation: among its claims, its handlers or its
        settlement. An invocation that ends before the chosen moment is not a crash: another is looked
        for, up to ``BUSY_WAIT_SECONDS`` (most invocations of a fast batch end within the moment)."""
        deadline = time.monotonic() + BUSY_WAIT_SECONDS
        low, high = self._moment
        while time.monotonic() < deadline and not self._stopping.is_set():
            busy = [index for index, function in enumerate(self._functions) if function.invoking]
            if not busy:
                time.sleep(0.01)
                continue
            index = self._random.choice(busy)
            if self._stopping.wait(self._random.uniform(low, high)):
                return
            if not self._functions[index].invoking:
                # The invocations are shorter than the moments drawn (the tail of a run: a record or
                # two a batch): draw from earlier in the next one.
                low, high = low / 2, max(high / 2, 0.005)
                continue
            function, at = self._functions[index], time.time()
            exits = function.runtime_exits
            if function.kill_runtime() and self._ended_by(function, exits):
                self.kills.append(Kill(index, at))
                return

    def _ended_by(self, function: FunctionEmulator, exits: int) -> bool:
        """Whether the kill ended an invocation: one that had already answered (its response on its way, still
        ``invoking``) ends without an error, and the kill only cost the next one a new runtime. Another is
        looked for then."""
        deadline = time.monotonic() + BUSY_WAIT_SECONDS
        while function.invoking and function.runtime_exits == exits and time.monotonic() < deadline:
            time.sleep(0.01)
        return function.runtime_exits > exits
