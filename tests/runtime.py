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
import shutil
import subprocess
import sys
from pathlib import Path

from infra import runtime_python
from infra.packaging import Target, compile_bytecode, install_wheels, pins

ROOT = Path(__file__).resolve().parents[1]
SITE_ROOT = ROOT / ".cache" / "runtime-site"
# The tests of the function itself: they import nothing but the function, its dependencies
# and the test tools below (the local pipeline, publisher and infra tests need the dev tools).
FUNCTION_TESTS = (
    "tests/unit/test_concurrency.py",
    "tests/unit/test_dispositions.py",
    "tests/unit/test_envelopes.py",
    "tests/unit/test_event_versions.py",
    "tests/unit/test_last_receive_and_containment.py",
    "tests/unit/test_observability.py",
    "tests/unit/test_payload_bounds.py",
    "tests/unit/test_payload_store.py",
    "tests/unit/test_pipeline_dispositions.py",
    "tests/unit/test_properties.py",
    "tests/unit/test_quarantine.py",
    "tests/unit/test_registry.py",
    "tests/unit/test_retry_backoff.py",
    "tests/unit/test_sample_events.py",
    "tests/unit/test_settings.py",
    "tests/unit/test_snapstart.py",
    "tests/unit/test_subscription_confirmation.py",
    "tests/unit/test_tenant_metrics.py",
    "tests/unit/test_testing_kit.py",
)
TEST_TOOLS = ("pytest", "pytest-asyncio", "hypothesis", "iniconfig", "packaging", "pluggy", "pygments", "attrs",
              "sortedcontainers")  # fmt: skip


def _pins() -> list[str]:
    """requirements.txt whole, and the test tools as requirements-dev.txt pins them."""
    dev = pins(ROOT / "requirements-dev.txt")
    return [*pins(ROOT / "requirements.txt").values(), *(dev[name] for name in TEST_TOOLS)]


def site() -> Path:
    pins_list, target = _pins(), Target.host()
    key = hashlib.sha256("\n".join([*pins_list, target.platform_tag]).encode()).hexdigest()[:12]
    folder = SITE_ROOT / key
    if (folder / ".complete").is_file():
        return folder
    shutil.rmtree(SITE_ROOT, ignore_errors=True)
    install_wheels(target, folder, "--no-deps", *pins_list)
    # Bytecode for 3.14 once, as the deployed asset has it: without it every test that starts
    # a process compiles pydantic and botocore again (the tests run with bytecode writing off).
    compile_bytecode(runtime_python.install(), folder)
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
