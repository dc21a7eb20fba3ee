"""Finds a CPython of the Lambda runtime's minor version (3.14) to build and test with.

The asset's bytecode must be compiled by the runtime's own minor version, and the
function's tests run under it. In order, this module uses:

1. ``python3.14`` on PATH (a system or Homebrew install, pyenv, a uv-managed one on PATH);
2. a uv-managed 3.14 (``uv python find 3.14``), when uv is installed;
3. a private copy of Debian's ``python3.14`` under ``.cache/python3.14``, which
   ``install()`` fetches with ``apt-get download`` from the ``sid`` suite and unpacks
   with ``dpkg-deb`` (nothing of the system changes; patchelf points it at sid's own loader).

Where none of these exists (macOS or Windows without 3.14), callers go on without
it and say in one line what was left out. ``python -m infra.runtime_python install``
is what ``make setup`` runs.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VERSION = "3.14"
# Installed from the wheel, the private copy goes in the app's folder, never in site-packages.
CACHE = (ROOT if (ROOT / "infra").is_dir() else Path.cwd()) / ".cache" / f"python{VERSION}"
LAUNCHER = CACHE / "bin" / f"python{VERSION}"
SUITE = "sid"
MIRROR = "http://deb.debian.org/debian"
# Debian's interpreter and what it links against, from sid so the C library matches.
PACKAGES = (
    f"python{VERSION}-minimal", f"libpython{VERSION}-minimal", f"libpython{VERSION}-stdlib",
    "libc6", "zlib1g", "libexpat1", "libbz2-1.0", "libffi8", "liblzma5", "libsqlite3-0", "libssl3t64",
    "libuuid1", "libzstd1", "libmpdec4",
)  # fmt: skip
_DEBIAN_ARCH = {"x86_64": ("amd64", "x86_64-linux-gnu", "ld-linux-x86-64.so.2"),
                "aarch64": ("arm64", "aarch64-linux-gnu", "ld-linux-aarch64.so.1")}  # fmt: skip


class RuntimePythonError(RuntimeError):
    """The private CPython could not be installed; the message says why."""


def _reports_version(command: list[str]) -> bool:
    try:
        result = subprocess.run(  # noqa: S603
            [*command, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and result.stdout.strip() == VERSION


def find() -> list[str] | None:
    """The command that runs a CPython 3.14 here, or None."""
    candidates: list[list[str]] = []
    on_path = shutil.which(f"python{VERSION}")
    if on_path:
        candidates.append([on_path])
    uv = shutil.which("uv") or (str(Path(sys.executable).with_name("uv")) if sys.executable else None)
    if uv and Path(uv).is_file():
        found = subprocess.run(  # noqa: S603
            [uv, "python", "find", "--no-python-downloads", VERSION], capture_output=True, text=True, check=False
        )
        if found.returncode == 0 and found.stdout.strip():
            candidates.append([found.stdout.strip()])
    if LAUNCHER.is_file():
        candidates.append([str(LAUNCHER)])
    for command in candidates:
        if _reports_version(command):
            return command
    return None


def install() -> list[str]:
    """Return a CPython 3.14, fetching Debian's into ``.cache/`` if none is found."""
    found = find()
    if found is not None:
        return found
    machine = platform.machine()
    if machine not in _DEBIAN_ARCH or not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        raise RuntimePythonError(
            f"no CPython {VERSION} found: install python{VERSION} (or `uv python install {VERSION}`); "
            "the Debian route needs apt-get and dpkg-deb"
        )
    arch, triplet, loader = _DEBIAN_ARCH[machine]
    shutil.rmtree(CACHE, ignore_errors=True)
    CACHE.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="python314-") as scratch:
        work = Path(scratch)
        (work / "lists" / "partial").mkdir(parents=True)
        (work / "cache" / "archives" / "partial").mkdir(parents=True)
        (work / "debs").mkdir()
        sources = work / "sources.list"
        sources.write_text(f"deb [arch={arch}] {MIRROR} {SUITE} main\n")
        options = [
            "-o", f"Dir::Etc::sourcelist={sources}", "-o", "Dir::Etc::sourceparts=-",
            "-o", f"Dir::State::Lists={work / 'lists'}", "-o", f"Dir::Cache={work / 'cache'}",
            "-o", f"APT::Architecture={arch}", "-o", "Debug::NoLocking=1", "-qq",
        ]  # fmt: skip
        for step in (["update"], ["download", *PACKAGES]):
            result = subprocess.run(  # noqa: S603
                ["apt-get", *options, *step],  # noqa: S607
                cwd=work / "debs",
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                raise RuntimePythonError(f"apt-get {step[0]} for python{VERSION} failed:\n{result.stderr.strip()}")
        root = CACHE / "root"
        for deb in sorted((work / "debs").glob("*.deb")):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)  # noqa: S603, S607
    # sid's C library is newer than the system's: the interpreter is pointed at sid's loader and
    # libraries (an ELF interpreter and RPATH, set by patchelf), so it and every process it starts
    # (compileall's workers, multiprocessing) run as a plain executable.
    libs = root / "usr" / "lib" / triplet
    patchelf = shutil.which("patchelf") or str(Path(sys.executable).with_name("patchelf"))
    binary = root / "usr" / "bin" / f"python{VERSION}"
    subprocess.run(  # noqa: S603
        [patchelf, "--set-interpreter", str(libs / loader), "--force-rpath", "--set-rpath", str(libs), str(binary)],
        check=True,
    )
    LAUNCHER.parent.mkdir(parents=True, exist_ok=True)
    LAUNCHER.symlink_to(binary)
    if not _reports_version([str(LAUNCHER)]):
        raise RuntimePythonError(f"the python{VERSION} unpacked in {CACHE} does not run")
    # Debian compiles the standard library when the package is installed, not in the package;
    # Lambda's runtime ships it compiled. Without this every import of it would compile it again.
    subprocess.run([str(LAUNCHER), "-m", "compileall", "-q", "-j", "0", str(root / "usr" / "lib" / f"python{VERSION}")],  # noqa: S603
                   check=True, capture_output=True)  # fmt: skip
    return [str(LAUNCHER)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.runtime_python", description=f"Find or install a CPython {VERSION}."
    )
    parser.add_argument("action", choices=["find", "install"], help="find: print it or fail; install: fetch if needed")
    args = parser.parse_args(argv)
    try:
        command = find() if args.action == "find" else install()
    except RuntimePythonError as exc:
        print(f"python{VERSION}: {exc}", file=sys.stderr)
        return 1
    if command is None:
        print(f"python{VERSION}: none found (run `make setup`)", file=sys.stderr)
        return 1
    print(" ".join(command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
