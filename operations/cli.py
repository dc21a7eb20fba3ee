"""What every command-line tool of the project does the same way: bad arguments, Ctrl-C, a closed pipe.

- A bad argument is one line, the error first, and where to read more: ``PROG: error: MESSAGE (see
  PROG --help)``, exit 2. No usage block: on a long command line it pushed the error out of sight.
- Ctrl-C (SIGINT) and SIGTERM stop the command the same way: what it runs is unwound (its ``finally``
  and ``with`` blocks stop child processes and give back what it held), then one line, ``stopped``,
  and exit 130, as shells report an interrupted command. A second signal during that unwinding is
  ignored rather than breaking it half-way (a third one does).
- A reader that goes away (``sqs-dlq status | head -1``) ends the command quietly, as it ends any
  Unix tool, never with a BrokenPipeError traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import signal
import sys
from collections.abc import Callable, Iterator
from types import FrameType
from typing import NoReturn, ParamSpec

P = ParamSpec("P")

USAGE_EXIT = 2
# The exit status of a command stopped by Ctrl-C, as shells report it (128 + SIGINT).
INTERRUPTED_EXIT = 130
# The exit status of a command whose reader closed the pipe, as shells report a tool SIGPIPE stopped.
CLOSED_PIPE_EXIT = 141


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with each error as one line that points to --help instead of a usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_EXIT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def command(main: Callable[P, int]) -> Callable[P, int]:
    """Wraps a command's ``main``: Ctrl-C and SIGTERM end it with ``stopped`` and 130, a closed
    stdout quietly with 141 (see the module's doc). Signal handlers are set only in the main thread
    and restored on return."""

    @functools.wraps(main)
    def run(*args: P.args, **kwargs: P.kwargs) -> int:
        with _stop_signals():
            try:
                code = main(*args, **kwargs)
                sys.stdout.flush()  # a reader gone is found here, not at the interpreter's exit
            except KeyboardInterrupt:
                with contextlib.suppress(OSError, ValueError):
                    # After the terminal's ^C, on a line of its own.
                    sys.stderr.write("\nstopped\n" if _on_a_terminal() else "stopped\n")
                    sys.stderr.flush()
                return INTERRUPTED_EXIT
            except BrokenPipeError:
                _silence_stdout()
                return CLOSED_PIPE_EXIT
            return code

    return run


@contextlib.contextmanager
def _stop_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise KeyboardInterrupt; a second one while that unwinds (stopping child
    processes, giving messages back) is ignored with a word, a third raises again."""
    if not _in_main_thread():
        yield
        return
    received = 0

    def interrupt(signum: int, frame: FrameType | None) -> None:
        nonlocal received
        received += 1
        if received == 2:
            # os.write, not print: a handler may run in the middle of another write to stderr.
            os.write(2, b"\nstopping: finishing cleanly (once more to quit at once)\n"[0 if _on_a_terminal() else 1 :])
            return
        raise KeyboardInterrupt

    previous = {signum: signal.signal(signum, interrupt) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _on_a_terminal() -> bool:
    try:
        return os.isatty(2)
    except OSError:
        return False


def _in_main_thread() -> bool:
    import threading  # noqa: PLC0415  # only here

    return threading.current_thread() is threading.main_thread()


def _silence_stdout() -> None:
    """Points stdout at /dev/null, so that the interpreter's last flush has nowhere to fail."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
