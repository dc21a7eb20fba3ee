from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App

from infra.app import build_app
from local import demo
from local.pipeline import Pipeline
from tests.support.shared import built_once

ROOT = Path(__file__).resolve().parents[2]
# The e2e files, longest first (from a fresh clone on 2 CPUs: about 130, 100, 85, 70 and 60 s for the first five).
# make test hands whole files to its workers in this order (--dist loadfile --no-loadscope-reorder), so the
# longest start first, each on a worker of its own, and the short ones fill in after them; in collection order,
# the two fault runs and the crash tests queued on one worker (docs/decisions/074-suite-speed.md).
LONGEST_FIRST = (
    "test_fault_run_crashes.py", "test_outage_run.py", "test_fault_run.py", "test_local_pipeline.py",
    "test_crash.py", "test_benchmarks_run.py", "test_rehearse.py", "test_stopping.py", "test_local_mapping_control.py",
    "test_local_consumers.py", "test_runbook.py", "test_crash_followups.py", "test_readme.py",
)  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file's tests keep their order


@pytest.fixture(scope="session")
def local_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `local` stage synthesized from cdk.json, as `make local` synthesizes it: once for all the suite's
    workers (the first that needs it synthesizes it, the others wait for it and read the same cloud assembly)."""

    def synth(folder: Path) -> None:
        (folder / "template-path").write_text(str(_synth_local(folder / "cdk.out")))

    return Path((built_once(tmp_path_factory, "local-stage", synth) / "template-path").read_text())


def _synth_local(outdir: Path) -> Path:
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    app = App(context={**context, "stage": "local"}, outdir=str(outdir))
    stack = build_app(app)
    app.synth()
    return outdir / f"{stack.stack_name}.template.json"


def run_as_written(commands: Iterable[str], workdir: Path, env: dict[str, str]) -> None:
    """Run each documented command in a plain bash; each must succeed without a traceback."""
    for command in commands:
        result = subprocess.run(
            ["/bin/bash", "-c", command], cwd=workdir, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, (command, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, (command, result.stderr)


def settle(
    pipeline: Pipeline, published: dict[str, demo.DemoMessage], ledger: demo.Ledger, seconds: float
) -> tuple[dict[str, str], dict[str, Any]]:
    """Observe the published messages until none is in flight (or ``seconds`` pass): their states and DLQ copies."""
    deadline = time.monotonic() + seconds
    while True:
        states, dead = demo.observe(pipeline.client, pipeline.dead_letter_queue.url, published, ledger)
        if demo.IN_FLIGHT not in states.values() or time.monotonic() >= deadline:
            return states, dead
        time.sleep(1)
