"""The function under the Lambda Runtime Interface Emulator, as `sam local invoke` runs it.

The emulator binary is the one inside the aws-sam-cli wheel (the same one SAM
starts in its container). Only that binary is needed, so it is extracted from
the pinned wheel into ``.cache/`` instead of installing SAM and its pins.
The handler runs under ``awslambdaric``, the runtime client Lambda uses, with
the template's environment, timeout and memory.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

from local.processes import LOOPBACK, ChildProcess, free_port, wait_for_port
from local.template import FunctionSpec

ROOT = Path(__file__).resolve().parents[1]
SAM_CLI_VERSION = "1.170.0"
CACHE = ROOT / ".cache" / "rie"
FUNCTION_CODE = ROOT / "functions" / "consumer"
INVOKE_PATH = "/2015-03-31/functions/function/invocations"


def rie_binary(cache: Path = CACHE) -> Path:
    """The emulator for this machine, extracted once from the pinned aws-sam-cli wheel."""
    arch = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine().lower()]
    binary = cache / SAM_CLI_VERSION / f"aws-lambda-rie-{arch}"
    if binary.is_file():
        return binary
    with tempfile.TemporaryDirectory() as download:
        # pip's own output (warnings included) is shown only if the download fails.
        result = subprocess.run(  # noqa: S603
            [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
             "--only-binary=:all:", "--dest", download, f"aws-sam-cli=={SAM_CLI_VERSION}"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"could not download aws-sam-cli=={SAM_CLI_VERSION}: {result.stderr.strip()}")
        [wheel] = Path(download).glob("aws_sam_cli-*.whl")
        with zipfile.ZipFile(wheel) as archive, archive.open(f"samcli/local/rapid/aws-lambda-rie-{arch}") as source:
            binary.parent.mkdir(parents=True, exist_ok=True)
            partial = binary.with_suffix(".partial")
            with partial.open("wb") as target:
                shutil.copyfileobj(source, target)
            partial.chmod(0o755)
            partial.rename(binary)
    return binary


# The emulator's last line for an invocation: its log is complete once this is written.
REPORT_LINE = "REPORT RequestId"


@dataclass(frozen=True)
class FunctionLog:
    """Where one invocation's lines start in its instance's log (an instance runs one at a time)."""

    path: Path
    offset: int

    def lines(self, wait_seconds: float = 2.0) -> list[str]:
        """The invocation's lines, once the emulator's REPORT line is written (or ``wait_seconds`` passed)."""
        deadline = time.monotonic() + wait_seconds
        while True:
            with self.path.open("rb") as log:
                log.seek(self.offset)
                text = log.read().decode(errors="replace")
            if REPORT_LINE in text or time.monotonic() >= deadline:
                return text.split(REPORT_LINE, 1)[0].splitlines()
            time.sleep(0.02)


@dataclass(frozen=True)
class Invocation:
    """What an invocation returned: the payload, or the function error; and where its log lines are."""

    payload: Any
    function_error: bool
    duration_seconds: float
    log: FunctionLog | None = None


class FunctionEmulator:
    """One execution environment: invocations are served one at a time."""

    def __init__(
        self,
        spec: FunctionSpec,
        environment: dict[str, str],
        *,
        log_path: Path | None = None,
        name: str = "consumer",
    ) -> None:
        self.spec = spec
        self.port = free_port()
        self._log_path = log_path
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),  # noqa: S108
            "PYTHONPATH": str(FUNCTION_CODE),
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout_seconds),
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_HANDLER": spec.handler,
            **environment,
        }
        # The emulator's own "(rapid)" lines only when asked: LOCAL_EMULATOR_LOG_LEVEL=info (or debug).
        emulator_log_level = os.environ.get("LOCAL_EMULATOR_LOG_LEVEL", "error")
        command = [
            str(rie_binary()),
            "--log-level", emulator_log_level,
            "--runtime-interface-emulator-address", f"{LOOPBACK}:{self.port}",
            "--runtime-api-address", f"{LOOPBACK}:{free_port()}",
            sys.executable, "-m", "awslambdaric", spec.handler,
        ]  # fmt: skip
        # True while an invocation runs (an instance runs one at a time: the lock queues the others,
        # a scheduled invocation behind a batch).
        self.invoking = False
        self._one_at_a_time = threading.Lock()
        self._child = ChildProcess(command, env=env, log_path=log_path)
        wait_for_port(self.port, self._child.process)

    def invoke(self, event: dict[str, Any]) -> Invocation:
        with self._one_at_a_time:
            return self._invoke(event)

    def _invoke(self, event: dict[str, Any]) -> Invocation:
        request = urllib.request.Request(  # loopback emulator URL
            f"http://{LOOPBACK}:{self.port}{INVOKE_PATH}",
            data=json.dumps(event).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        log = FunctionLog(self._log_path, self._log_path.stat().st_size) if self._log_path else None
        started = time.monotonic()
        self.invoking = True
        try:
            # The emulator enforces the function timeout; give the HTTP call a little more.
            with urllib.request.urlopen(request, timeout=self.spec.timeout_seconds + 30) as response:  # noqa: S310
                raw = response.read()
                error_header = response.headers.get("X-Amz-Function-Error")
        except urllib.error.HTTPError as error:
            if error.code != HTTPStatus.BAD_GATEWAY:
                raise
            # The runtime process died mid-invocation (a crash, an out-of-memory kill): Lambda reports
            # Runtime.ExitError and starts a new runtime for the next invocation, as the emulator does.
            return Invocation("Runtime.ExitError", function_error=True, duration_seconds=time.monotonic() - started)
        finally:
            self.invoking = False
        elapsed = time.monotonic() - started
        try:
            payload = json.loads(raw) if raw.strip() else None
        except json.JSONDecodeError:
            # Only the emulator itself answers in plain text: "Task timed out after 3.00 seconds".
            return Invocation(raw.decode(errors="replace"), function_error=True, duration_seconds=elapsed, log=log)
        # The emulator answers 200 for function errors; the body says so.
        is_error = bool(error_header) or (
            isinstance(payload, dict) and "errorType" in payload and "errorMessage" in payload
        )
        return Invocation(payload, function_error=is_error, duration_seconds=elapsed, log=log)

    def _runtime_pids(self) -> set[str]:
        """The runtime processes the emulator started (it is a Go program: any of its threads may have)."""
        emulator = self._child.process.pid
        return {
            child
            for task in Path(f"/proc/{emulator}/task").iterdir()
            for child in (task / "children").read_text().split()
        }

    def kill_runtime(self) -> bool:
        """SIGKILL the runtime process, as a crash or an out-of-memory kill ends it; False if there was none."""
        try:
            pids = self._runtime_pids()
        except OSError:
            return False
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        return bool(pids)

    def runtime_peak_memory_mb(self) -> int | None:
        """The runtime process's peak resident memory (VmHWM), which the emulator does not measure:
        its REPORT line gives the memory size as "Max Memory Used". None where /proc cannot tell."""
        try:
            children = self._runtime_pids()
            peaks = []
            for child in children:
                for line in Path(f"/proc/{child}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peaks.append(int(line.split()[1]))
        except (OSError, ValueError):
            return None
        return max(peaks) // 1024 if peaks else None

    def stop(self) -> None:
        self._child.stop()
