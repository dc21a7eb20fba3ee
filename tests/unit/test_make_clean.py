"""`make clean` leaves the tree as a fresh clone's: whatever .gitignore hides, clean removes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


def test_make_clean_removes_everything_gitignore_hides(tmp_path: Path):
    # GIVEN a repository with the project's Makefile and .gitignore, and one of each ignored thing, made
    # where setup, synth and the tests make them (nested caches included)
    for name in ("Makefile", ".gitignore"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "module.py").write_text("")
    _git("init", "-q", cwd=tmp_path)
    _git("add", "-A", cwd=tmp_path)
    fresh = _git("status", "--ignored", "--porcelain", cwd=tmp_path)
    patterns = [line.strip() for line in (ROOT / ".gitignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]  # fmt: skip
    for pattern in patterns:
        name = pattern.rstrip("/").replace("*", "made")
        for parent in (tmp_path, tmp_path / "pkg"):
            made = parent / name
            if pattern.endswith("/"):
                made.mkdir(exist_ok=True)
                (made / "inside").write_text("x")
            else:
                made.write_text("x")
    assert _git("status", "--ignored", "--porcelain", cwd=tmp_path) != fresh

    # WHEN make clean runs
    subprocess.run(["make", "--no-print-directory", "clean"], cwd=tmp_path, capture_output=True, check=True)

    # THEN git sees the tree as it was on the fresh clone
    assert _git("status", "--ignored", "--porcelain", cwd=tmp_path) == fresh
