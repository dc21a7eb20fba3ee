"""The asset ships bytecode compiled by the runtime's Python for everything its cold path imports.

Lambda runs the asset from a read-only folder: a module without a ``.pyc`` of the runtime's
minor version is compiled again on every cold start. The deployed (arm64) asset is checked
against the modules a cold start really imports: the same code, built the same way for this
machine's CPU, run read-only under CPython 3.14 with the ``dev`` stage's environment
(idempotency on, the store on loopback) through import and a first batch.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import lambda_runtime
from infra import runtime_python
from infra.consumer_function import TARGET
from infra.function_environment import HANDLER
from infra.packaging import Target, build_function_asset

pytestmark = pytest.mark.e2e

# importlib's flags word of a hash-based .pyc whose source is never checked.
UNCHECKED_HASH = 0b01


@pytest.fixture(scope="module")
def cold_path(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str]]:
    """The bytecode magic of 3.14 and the modules (name: file path relative to the task) of a cold start."""
    python = runtime_python.install()
    asset = build_function_asset(Target.host())
    event = tmp_path_factory.mktemp("events") / "batch.json"
    event.write_text(json.dumps(lambda_runtime.sam_event(10)))
    with lambda_runtime.store_on_loopback() as (endpoint, calls), lambda_runtime.read_only_copy(asset) as task:
        environment = lambda_runtime.function_lambda_environment(task, endpoint)
        report = lambda_runtime.run_probe(python, "modules", HANDLER, str(event), env=environment)
        assert "TransactWriteItems" in calls, "the cold path must include the idempotency store"
        modules = {
            name: str(Path(path).relative_to(task))
            for name, path in report["modules"].items()
            if Path(path).is_relative_to(task)
        }
    return report["magic"], modules


def test_every_module_of_the_cold_path_has_unchecked_314_bytecode_in_the_deployed_asset(cold_path):
    magic, modules = cold_path
    deployed = build_function_asset(TARGET)
    python_modules = {name: path for name, path in modules.items() if path.endswith(".py")}
    assert "sqs_consumer.handler" in python_modules and "pydantic" in python_modules
    # botocore's clients only: boto3 (and s3transfer) stay off the cold path (docs/decisions/019-botocore-clients.md).
    assert "botocore.client" in modules and "boto3" not in modules and "s3transfer" not in modules
    missing, stale = [], []
    for name, relative in sorted(python_modules.items()):
        source = deployed / relative
        cached = source.parent / "__pycache__" / f"{source.stem}.cpython-314.pyc"
        if not cached.is_file():
            missing.append(name)
            continue
        header = cached.read_bytes()[:8]
        if header[:4].hex() != magic or int.from_bytes(header[4:8], "little") != UNCHECKED_HASH:
            stale.append(name)
    assert not missing, f"{len(missing)} cold-path modules have no 3.14 .pyc in the asset: {missing[:10]}"
    assert not stale, f"{len(stale)} .pyc files are not 3.14 unchecked-hash bytecode: {stale[:10]}"
