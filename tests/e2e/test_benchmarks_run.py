"""`make bench` is not a test; this only checks that its quick variant runs and prints every figure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmarks_print_every_figure_with_its_reference():
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'functions' / 'consumer'}"}
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    for figure in ("batch of 10 (us)", "batch of 10,000 (us)", "cold start", "50 ms async wait", "peak RSS",
                   "Exactly-once cost", "Cost per million messages", "Seed worker on Fargate",
                   "plain boto3 loop of 10", "publisher: messages/s"):  # fmt: skip
        assert figure in result.stdout, figure
