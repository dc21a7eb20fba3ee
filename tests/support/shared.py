"""What several of the suite's workers need and is slow to make, made once for the whole run.

With pytest-xdist each worker is its own process: a module- or session-scoped fixture runs once a worker,
so a synthesis or a build that two workers need is done twice. ``built_once`` makes it in a folder beside
the workers' own temporary folders; the first worker that needs it builds it while holding a lock, the
others wait for the lock and read what it built.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """The folder ``name``, filled by ``build(folder)`` once for all the run's workers."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder = shared / name
    with (shared / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the worker dies
        done = shared / f"{name}.built"
        if not done.is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder
