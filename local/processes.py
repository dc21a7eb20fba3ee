"""Child processes on loopback: free ports, readiness, and clean shutdown."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on {LOOPBACK}:{port} within {timeout} s")


class ChildProcess:
    """A process in its own group, so stopping it stops its children too."""

    def __init__(
        self, command: Sequence[str], *, env: dict[str, str], log_path: Path | None = None, capture: bool = False
    ) -> None:
        """Output to ``log_path``, or with ``capture`` to ``process.stdout`` for the caller to read, else nowhere."""
        self._log: IO[bytes] | None = log_path.open("ab") if log_path else None
        self.process = subprocess.Popen(  # noqa: S603  # our own fixed commands
            list(command),
            env=env,
            stdout=subprocess.PIPE if capture else self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self, grace: float = 5.0) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self._log:
            self._log.close()
