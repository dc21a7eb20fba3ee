"""The function under the Lambda Runtime Interface Emulator, as `sam local invoke` runs it.

The emulator binary is the one inside the aws-sam-cli wheel (the same one SAM
starts in its container). Only that binary is needed, so it is extracted from
the pinned wheel into ``.cache/`` instead of installing SAM and its pins.
The handler runs under ``awslambdaric``, the runtime client Lambda uses, with
the template's environment, timeout and memory.

The emulator's REPORT line is made true on its way to the log (``ReportLines``): it says "Max Memory
Used" is the memory size and "Init Duration: 0.02 ms", and counts the init in the first invocation's
Duration. The line written gives the runtime process tree's peak resident memory (VmHWM, which, like
Lambda's figure, never falls within one environment), and the init and invoke durations the emulator
itself measures and says in its own lines at --log-level info (INIT REPORT, INVOKE RTDONE).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import re
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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

from local.processes import LOOPBACK, ChildProcess, free_port, wait_for_port
from local.template import FunctionSpec
from sqs_consumer.models.trace import TRACE_HEADER_ATTRIBUTE, trace_id

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
    # The trace ids of the invocation's records (their AWSTraceHeader), in order, once each.
    trace_ids: tuple[str, ...] = field(default=())

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


# What the emulator's own lines (at --log-level info) say of the runtime: its init, and each invoke.
_INIT_REPORT = re.compile(r"\(rapid\) INIT REPORT\(durationMs: ([0-9.]+)\)")
_INVOKE_DONE = re.compile(r"\(rapid\) INVOKE RTDONE\(.*duration: ([0-9.]+)ms\)")
EMULATOR_LINE = " (rapid) "


class ReportLines:
    """The emulator's output on its way to the log, each REPORT line given the runtime's real peak memory,
    init and invoke durations (see the module's doc). ``runtime`` names the runtime's processes now; the
    emulator's own "(rapid)" lines, read for the durations, are logged only with ``show_emulator_lines``."""

    def __init__(self, runtime: Callable[[], list[str]], *, show_emulator_lines: bool = False) -> None:
        self._runtime = runtime
        self._show = show_emulator_lines
        self._init_ms: float | None = None
        self._invoke_ms: float | None = None
        self.reports = 0
        self._written = threading.Condition()

    def see(self, line: str) -> str | None:
        """``line`` as it should be logged; None when it should not be."""
        if EMULATOR_LINE in line:
            if found := _INIT_REPORT.search(line):
                self._init_ms = float(found[1])
            elif found := _INVOKE_DONE.search(line):
                self._invoke_ms = float(found[1])
            return line if self._show else None
        if line.startswith(REPORT_LINE):
            return self._report(line)
        return line

    def written(self, line: str) -> None:
        if line.startswith(REPORT_LINE):
            with self._written:
                self.reports += 1
                self._written.notify_all()

    def wait_for_reports(self, count: int, timeout: float) -> None:
        with self._written:
            self._written.wait_for(lambda: self.reports >= count, timeout=timeout)

    def _report(self, line: str) -> str:
        """The REPORT line's fields, tab-separated, each the runtime's where it was measured."""
        init_ms, invoke_ms = self._init_ms, self._invoke_ms
        self._init_ms = self._invoke_ms = None
        peak_kb = sum(peak for pid in self._runtime() if (peak := peak_resident_kb(pid)) is not None)
        head, *fields, tail = line.split("\t")
        measured = {
            "Init Duration": f"{init_ms:.2f} ms" if init_ms is not None else None,
            # The emulator counts a cold start's init in its Duration; Lambda does not.
            "Duration": f"{invoke_ms:.2f} ms" if invoke_ms is not None else None,
            "Max Memory Used": f"{math.ceil(peak_kb / 1024)} MB" if peak_kb else None,
        }
        named = dict(field.split(": ", 1) for field in fields if ": " in field)
        if measured["Init Duration"] is not None and "Init Duration" not in named:
            named = {"Init Duration": "", **named}
        told = [f"{name}: {measured.get(name) or value}" for name, value in named.items()]
        return "\t".join([head, *told, tail])


def process_tree(pids: Iterable[str]) -> list[str]:
    """``pids`` and every process below them (read from /proc; those gone meanwhile left out)."""
    found: list[str] = []
    pending = list(pids)
    while pending:
        pid = pending.pop(0)
        found.append(pid)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                pending.extend((task / "children").read_text().split())
    return found


def peak_resident_kb(pid: str) -> int | None:
    """A process's peak resident memory (VmHWM), in kB; None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _trace_ids(event: Any) -> tuple[str, ...]:
    records = event.get("Records") if isinstance(event, dict) else None
    headers = [(record.get("attributes") or {}).get(TRACE_HEADER_ATTRIBUTE) for record in records or []
               if isinstance(record, dict)]  # fmt: skip
    return tuple(dict.fromkeys(found for header in headers if (found := trace_id(header)) is not None))


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
        # The emulator's own "(rapid)" lines in the log only when asked: LOCAL_EMULATOR_LOG_LEVEL=info (or
        # debug). It runs at info at least: its INIT REPORT and INVOKE RTDONE lines give the real durations.
        asked = os.environ.get("LOCAL_EMULATOR_LOG_LEVEL", "error")
        emulator_log_level = asked if asked == "debug" else "info"
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
        # Invocations whose runtime died under them (Runtime.ExitError): counted before ``invoking`` is False.
        self.runtime_exits = 0
        self._one_at_a_time = threading.Lock()
        self._returned = 0  # invocations that returned: each has its REPORT line
        self._child = ChildProcess(command, env=env, capture=log_path is not None)
        self._report = ReportLines(lambda: process_tree(sorted(self._runtime_pids())),
                                   show_emulator_lines=asked in ("info", "debug"))  # fmt: skip
        if log_path is not None:
            threading.Thread(target=self._relay, args=(log_path,), name="emulator-output", daemon=True).start()
        wait_for_port(self.port, self._child.process)

    def _relay(self, log_path: Path) -> None:
        """The emulator's output into its log, line by line, its REPORT lines made true."""
        output = self._child.process.stdout
        assert output is not None
        with log_path.open("ab") as log:
            for raw in iter(output.readline, b""):
                line = self._report.see(raw.decode(errors="replace"))
                if line is None:
                    continue
                log.write(line.encode())
                log.flush()
                self._report.written(line)

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
        log = None
        if self._log_path is not None:
            # The last invocation's REPORT line is in the log before this one's slice starts.
            self._report.wait_for_reports(self._returned, timeout=2.0)
            log = FunctionLog(self._log_path, self._log_path.stat().st_size, _trace_ids(event))
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
            self.runtime_exits += 1
            return Invocation("Runtime.ExitError", function_error=True, duration_seconds=time.monotonic() - started)
        finally:
            self.invoking = False
        self._returned += 1
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
        """The runtime process tree's peak resident memory (VmHWM), as its REPORT lines give it. None where
        /proc cannot tell."""
        try:
            pids = process_tree(sorted(self._runtime_pids()))
        except OSError:
            return None
        peak_kb = sum(peak for pid in pids if (peak := peak_resident_kb(pid)) is not None)
        return math.ceil(peak_kb / 1024) if peak_kb else None

    def stop(self) -> None:
        self._child.stop()
