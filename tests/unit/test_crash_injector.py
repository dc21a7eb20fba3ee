"""The fault run's crashes: as many as asked, each in an invocation still running when it comes."""

from __future__ import annotations

import time
from typing import Any, cast

from local.crashes import CrashInjector


class ShortInvocations:
    """An instance whose invocations last ``seconds``, one after another with a pause between."""

    def __init__(self, seconds: float, pause: float) -> None:
        self.runtime_exits = 0  # invocations the kills ended
        self.kills = 0
        self._seconds, self._pause = seconds, pause
        self._started = time.monotonic()

    @property
    def invoking(self) -> bool:
        return (time.monotonic() - self._started) % (self._seconds + self._pause) < self._seconds

    def kill_runtime(self) -> bool:
        self.kills += 1
        self.runtime_exits += self.invoking
        return True


class AnsweredBeforeTheKill(ShortInvocations):
    """An instance whose first invocation killed had already answered: the kill ends nothing."""

    def kill_runtime(self) -> bool:
        self.kills += 1
        if self.kills > 1:
            self.runtime_exits += self.invoking
        return True


def test_crash_injector_makes_every_crash_asked_for_when_invocations_are_short():
    # GIVEN instances whose invocations mostly end before a crash's random moment comes
    functions = [ShortInvocations(0.03, 0.02) for _ in range(2)]
    injector = CrashInjector(cast(Any, functions), 3, seed=7, pause_seconds=(0.0, 0.05))

    # WHEN it runs (for a few seconds at most)
    injector.start()
    deadline = time.monotonic() + 20
    while len(injector.kills) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    injector.stop()

    # THEN it made the three crashes, each ending an invocation
    assert len(injector.kills) == 3
    assert sum(function.runtime_exits for function in functions) == 3


def test_a_kill_that_ended_no_invocation_is_not_a_crash_and_another_is_made():
    # GIVEN an instance whose first kill comes after its invocation answered (its response on its way)
    function = AnsweredBeforeTheKill(0.2, 0.02)
    injector = CrashInjector(cast(Any, [function]), 1, seed=3, pause_seconds=(0.0, 0.01), moment_seconds=(0.0, 0.01))

    # WHEN it runs
    injector.start()
    deadline = time.monotonic() + 20
    while not injector.kills and time.monotonic() < deadline:
        time.sleep(0.05)
    injector.stop()

    # THEN the kill that ended nothing is not counted, and the crash asked for was made by another
    assert function.kills == 2
    assert len(injector.kills) == function.runtime_exits == 1
