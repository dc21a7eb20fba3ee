"""make upgrade-check on the real app: from HEAD to the working tree, nothing stateful is replaced."""

from __future__ import annotations

import subprocess
import sys

import pytest

from infra.identity import ROOT

pytestmark = pytest.mark.e2e


def test_upgrade_check_from_head_synthesizes_both_trees_and_passes_with_a_one_line_summary():
    # GIVEN the local stage (two consumers, one FIFO), synthesized from HEAD's archive and from the working tree
    # WHEN the check runs as make runs it
    result = subprocess.run(
        [sys.executable, "-m", "infra.upgrade_check", "--from", "HEAD", "--stage", "local"],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip

    # THEN it exits 0 with its summary (HEAD's templates are the working tree's, unless the tree changes them)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith(
        "upgrade-check: no stateful resource replaced or orphaned from HEAD"
    )
