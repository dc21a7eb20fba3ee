"""LocalStack community as a second CloudFormation engine, without Docker: installed from PyPI into its own
environment under the runtime's CPython 3.14 and run as a plain process on 127.0.0.1.

``environment()`` installs ``requirements-rehearse.txt`` into ``.cache/localstack`` once (uv, keyed by the
requirements' hash). ``running()`` starts ``python -m localstack.runtime.main`` on a free port with only
the services a rehearsal needs, waits until it answers, and stops it when the block ends: LocalStack
ignores SIGTERM, so it is sent SIGINT, given a grace, then SIGKILL (by its process group, which it leads).
It runs our queues, policies, alarms, SNS topics, log groups and buckets; not Lambda (it needs Docker)
nor DynamoDB (it needs Java).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from infra import runtime_python

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "requirements-rehearse.txt"
VENV = ROOT / ".cache" / "localstack"
SERVICES = ("sqs", "cloudformation", "iam", "sts", "s3", "sns", "logs", "cloudwatch", "events")
STARTUP_SECONDS = 180.0
# What a stop waits after SIGINT before SIGKILL: LocalStack keeps nothing a rehearsal needs.
GRACE_SECONDS = 5.0
REGION = "us-east-1"
ACCOUNT = "000000000000"


class LocalStackError(RuntimeError):
    """LocalStack could not be installed or did not start; the message says why."""


@dataclass(frozen=True)
class Endpoint:
    """A running LocalStack: where to send AWS calls, and its log."""

    url: str
    log: Path


def _stamp() -> Path:
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:16]
    return VENV / f".installed-{digest}"


def environment() -> Path:
    """The Python of ``.cache/localstack``, installing LocalStack's pinned set first if needed."""
    python = VENV / "bin" / "python"
    if _stamp().is_file() and python.is_file():
        return python
    try:
        interpreter = runtime_python.install()[0]
    except runtime_python.RuntimePythonError as error:
        raise LocalStackError(f"LocalStack runs under CPython {runtime_python.VERSION}: {error}") from None
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    shutil.rmtree(VENV, ignore_errors=True)
    for step in (
        [uv, "venv", "--quiet", "--python", interpreter, str(VENV)],
        [uv, "pip", "install", "--quiet", "--python", str(python), "-r", str(REQUIREMENTS)],
    ):
        result = subprocess.run(step, capture_output=True, text=True, check=False)  # noqa: S603
        if result.returncode != 0:
            raise LocalStackError(f"{' '.join(step[:3])} failed (needs the package index once):\n{result.stderr}")
    _stamp().write_text("ok\n")
    return python


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _environment_of(port: int, state: Path) -> dict[str, str]:
    keep = {name: os.environ[name] for name in ("PATH", "HOME", "LANG", "TMPDIR") if name in os.environ}
    return {
        **keep,
        "GATEWAY_LISTEN": f"127.0.0.1:{port}",
        "SERVICES": ",".join(SERVICES),
        "LOCALSTACK_HOST": f"127.0.0.1:{port}",
        # Its state and caches in a folder of this run's own, never the user's or /var/lib.
        "FILESYSTEM_ROOT": str(state),
        "LOCALSTACK_VOLUME_DIR": str(state / "volume"),
        "DISABLE_EVENTS": "1",
        "SKIP_SSL_CERT_DOWNLOAD": "1",
        "SKIP_INFRA_DOWNLOADS": "1",
        "DEBUG": "0",
    }


@contextlib.contextmanager
def running(python: Path | None = None) -> Iterator[Endpoint]:
    """LocalStack on 127.0.0.1:<a free port> for the length of the block."""
    python = python or environment()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="localstack-") as scratch:
        state = Path(scratch)
        log = state / "localstack.log"
        with log.open("wb") as output:
            process = subprocess.Popen(  # noqa: S603
                [str(python), "-m", "localstack.runtime.main"], env=_environment_of(port, state),
                cwd=state, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_ready(process, url, log)
            yield Endpoint(url=url, log=log)
        finally:
            stop(process)


def _wait_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            raise LocalStackError(f"LocalStack exited with {process.returncode} before it was ready:\n{tail}")
        if _answers(url):
            return
        time.sleep(0.5)
    raise LocalStackError(f"LocalStack did not answer on {url} within {STARTUP_SECONDS:.0f} s (log: {log})")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_localstack/health", timeout=2) as answer:  # noqa: S310
            return bool(answer.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGINT to LocalStack's process group, then SIGKILL after the grace if anything of it is left."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(GRACE_SECONDS)
    # Its group may outlive it (workers it started): the kill goes to the group it leads, by its id.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def main(argv: list[str] | None = None) -> int:
    """``python -m infra.localstack install``: what ``make setup`` runs."""
    parser = argparse.ArgumentParser(prog="python -m infra.localstack", description="Install LocalStack's environment.")
    parser.add_argument("action", choices=["install"], help="install requirements-rehearse.txt into .cache/localstack")
    parser.parse_args(argv)
    try:
        environment()
    except LocalStackError as error:
        sys.stderr.write(f"localstack: {error}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
