"""The function's own tests under the Lambda runtime's Python: ``python -m tests.runtime``.

Lambda runs the function under CPython 3.14; the rest of the suite runs on the
development Python. This runs the function's unit tests, and every sample event
through the handler, under 3.14 too (``make test`` calls it). The interpreter comes
from infra/runtime_python.py; the function's pinned dependencies and the test tools
are installed for it into ``.cache/runtime-site``, keyed by their pins.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

from infra import runtime_python

ROOT = Path(__file__).resolve().parents[1]
SITE_ROOT = ROOT / ".cache" / "runtime-site"
# The tests of the function itself: they import nothing but the function, its dependencies
# and the test tools below (the local pipeline, publisher and infra tests need the dev tools).
FUNCTION_TESTS = (
    "tests/unit/test_concurrency.py",
    "tests/unit/test_dispositions.py",
    "tests/unit/test_last_receive_and_containment.py",
    "tests/unit/test_observability.py",
    "tests/unit/test_properties.py",
    "tests/unit/test_quarantine.py",
    "tests/unit/test_registry.py",
    "tests/unit/test_retry_backoff.py",
    "tests/unit/test_sample_events.py",
    "tests/unit/test_settings.py",
    "tests/unit/test_snapstart.py",
)
TEST_TOOLS = ("pytest", "pytest-asyncio", "hypothesis", "iniconfig", "packaging", "pluggy", "pygments", "attrs",
              "sortedcontainers")  # fmt: skip


def _pins() -> list[str]:
    """requirements.txt whole, and the test tools as requirements-dev.txt pins them."""
    function = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
                if "==" in line and not line.lstrip().startswith("#")]  # fmt: skip
    dev = {}
    for line in (ROOT / "requirements-dev.txt").read_text().splitlines():
        name, sep, _ = line.partition("==")
        if sep:
            dev[name.strip().lower()] = line.strip()
    return function + [dev[name] for name in TEST_TOOLS]


def site() -> Path:
    pins = _pins()
    machine = "aarch64" if platform.machine() in {"aarch64", "arm64"} else "x86_64"
    key = hashlib.sha256("\n".join([*pins, machine]).encode()).hexdigest()[:12]
    folder = SITE_ROOT / key
    if (folder / ".complete").is_file():
        return folder
    shutil.rmtree(SITE_ROOT, ignore_errors=True)
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
               "--target", str(folder), "--platform", f"manylinux2014_{machine}", "--implementation", "cp",
               "--python-version", runtime_python.VERSION, "--only-binary=:all:", *pins]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"pip could not install the CPython {runtime_python.VERSION} test tools:\n{result.stderr}")
    (folder / ".complete").write_text("ok\n")
    return folder


def main(argv: list[str]) -> int:
    try:
        python = runtime_python.install()
    except runtime_python.RuntimePythonError as exc:
        print(f"tests on CPython {runtime_python.VERSION}: {exc}", file=sys.stderr)
        return 1
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site()), str(ROOT), str(ROOT / "functions" / "consumer")]),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    command = [*python, "-m", "pytest", "-p", "no:cacheprovider", "-q", *(argv or FUNCTION_TESTS)]
    print(f"CPython {runtime_python.VERSION}: {' '.join(command[1:])}", flush=True)
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
