"""Builds the consumer function's asset without Docker.

The pinned runtime dependencies (requirements.txt) are installed with ``uv pip install`` for
the function's platform (``--python-platform``, ``--python-version``,
``--only-binary``), never in a container: the wheels pip would choose, from uv's cache in a
fraction of pip's time (docs/decisions/080-asset-installed-with-uv.md). The dependency layer is
cached under ``.cache/`` keyed by the requirements, the target and uv's version, so a
repeated synth is fast and works offline once the cache is warm. The code is
copied beside the dependencies into a staging folder keyed by both.

Lambda runs the asset from a read-only ``/var/task``, where Python cannot cache
bytecode: without ``.pyc`` files every cold start compiles every module it imports.
So the staging folder is compiled by a CPython of the runtime's exact minor version
(infra/runtime_python.py) with hash-based, unchecked ``.pyc`` files, which zip
timestamps cannot invalidate. Where no such Python is found, the asset is built
without bytecode and one line says so.

The same sources give the same asset wherever they are built: CDK names an asset by a hash of
its files' relative paths and contents (not their timestamps, modes or order), so nothing
in the folder may depend on where it was built. The bytecode records each module's path as
Lambda sees it (``/var/task/...``), not the build folder's, and the installer's console scripts, whose
first line names the building machine's Python, are left out.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import json
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra import runtime_python

ROOT = Path(__file__).resolve().parents[1]
# Installed from the wheel (infra/release.py), the function's source and its pinned requirements travel
# inside this package, and assets are cached in the app's folder rather than in site-packages.
_IN_REPOSITORY = (ROOT / "functions" / "consumer").is_dir()
_HERE = Path(__file__).resolve().parent
FUNCTION_SOURCE = ROOT / "functions" / "consumer" if _IN_REPOSITORY else _HERE / "function"
REQUIREMENTS = ROOT / "requirements.txt" if _IN_REPOSITORY else _HERE / "function-requirements.txt"
CACHE_DIR = (ROOT if _IN_REPOSITORY else Path.cwd()) / ".cache" / "assets"
# The test kit (sqs_consumer.testing) is for tests: the function never imports it, so the asset leaves it out.
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", "tests", "testing")
# The AWS services whose botocore models the asset keeps: the ones the function's clients call
# (sqs_consumer/clients.py: S3 for offloaded payloads; secrets.py through Powertools). botocore lists every model
# folder it ships when it makes a client, and 400-odd folders cost a cold start some 40 ms; a
# handler that calls another service adds it here (botocore's UnknownServiceError names the
# services the asset has).
BOTOCORE_SERVICES = ("dynamodb", "s3", "secretsmanager", "sqs")
# Where Lambda unpacks the asset: the path the bytecode records for each module (tracebacks, traces).
TASK_ROOT = "/var/task"
# How the dependency folder is laid out beyond the installer's own work (in its cache key, so a change rebuilds it):
# 2 leaves out the console scripts; 3 keeps the service models as plain JSON without their documentation.
_DEPENDENCIES_LAYOUT = b"3"


class PackagingError(RuntimeError):
    """The dependencies could not be installed for the function's platform."""


@dataclass(frozen=True)
class Target:
    """The Lambda platform: CPython version and CPU architecture."""

    python_version: str  # "3.14"
    architecture: str  # "arm64" or "x86_64"

    @classmethod
    def host(cls) -> Target:
        """The runtime's Python on this machine's CPU: an asset that runs here, for tests and benchmarks."""
        arm = platform.machine() in {"aarch64", "arm64"}
        return cls(python_version=runtime_python.VERSION, architecture="arm64" if arm else "x86_64")

    @property
    def platform_tag(self) -> str:
        """uv's ``--python-platform``: Lambda's manylinux2014 (glibc 2.17 and later) on its CPU."""
        return "aarch64-manylinux2014" if self.architecture == "arm64" else "x86_64-manylinux2014"

    @property
    def abi_tag(self) -> str:
        """The tag in compiled extension names, e.g. ``cpython-314-aarch64-linux-gnu``."""
        machine = "aarch64" if self.architecture == "arm64" else "x86_64"
        return f"cpython-{self.python_version.replace('.', '')}-{machine}-linux-gnu"


def _digest(*parts: bytes) -> str:
    sha = hashlib.sha256()
    for part in parts:
        sha.update(len(part).to_bytes(8, "big"))
        sha.update(part)
    return sha.hexdigest()[:16]


def _tree_digest(root: Path) -> bytes:
    parts = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            parts.append(str(path.relative_to(root)).encode())
            parts.append(path.read_bytes())
    return _digest(*parts).encode()


def _installer_version() -> bytes:
    from importlib.metadata import version  # noqa: PLC0415

    return version("uv").encode()


def pins(*requirement_files: Path) -> dict[str, str]:
    """The pinned requirements of ``requirement_files`` by normalised name: {"pydantic": "pydantic==2.14.4"}."""
    pinned: dict[str, str] = {}
    for requirements in requirement_files:
        for line in requirements.read_text().splitlines():
            name, sep, version = line.partition("==")
            if sep and not name.lstrip().startswith("#"):
                pinned[name.strip().lower().replace("_", "-")] = f"{name.strip()}=={version.strip()}"
    return pinned


def install_wheels(target: Target, folder: Path, *arguments: str, hint: str = "") -> None:
    """``uv pip install arguments`` into ``folder`` for ``target``'s platform: wheels only, no bytecode."""
    from uv import find_uv_bin  # noqa: PLC0415

    command = [
        find_uv_bin(), "pip", "install", "--quiet", "--python", sys.executable, "--target", str(folder),
        "--python-platform", target.platform_tag, "--python-version", target.python_version,
        "--only-binary", ":all:", *arguments,
        # Copies, not uv's default hard links into its cache: the build edits some files in place (botocore's
        # endpoints.json), which would edit the cache and every environment linked to it.
        "--link-mode", "copy",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise PackagingError(
            f"uv could not install {' '.join(arguments)} for Python {target.python_version} on {target.architecture} "
            f"(needs network once{', ' + hint if hint else ''}):\n{result.stderr}"
        )
    # uv's lock on the folder while it installs: not part of what it installed.
    (folder / ".lock").unlink(missing_ok=True)


def build_dependencies(target: Target, requirements: Path = REQUIREMENTS, cache_dir: Path = CACHE_DIR) -> Path:
    """Install the pinned requirements for ``target`` once; return the folder."""
    key = _digest(requirements.read_bytes(), target.python_version.encode(), target.architecture.encode(),
                  _installer_version(), " ".join(BOTOCORE_SERVICES).encode(), _DEPENDENCIES_LAYOUT)  # fmt: skip
    folder = cache_dir / f"deps-{target.architecture}-py{target.python_version}-{key}"
    if (folder / ".complete").is_file():
        return folder
    partial = _partial(cache_dir)
    install_wheels(target, partial, "--requirement", str(requirements), hint=f"then the cache in {cache_dir} is used")
    _prune_botocore_models(partial)
    _drop_scripts(partial)
    return _publish(partial, folder)


def _partial(cache_dir: Path) -> Path:
    """A folder of this process's own to build in: two builds at once (parallel tests, two
    terminals) never write into, rename or delete each other's work."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".partial-", dir=cache_dir))


def _publish(partial: Path, folder: Path) -> Path:
    """Move a finished build into place in one rename; if another build got there first, keep
    its folder (the same inputs made both) and drop this one. A folder without its marker is a
    build that was cut off: it is replaced."""
    (partial / ".complete").write_text("ok\n")
    if folder.is_dir() and not (folder / ".complete").is_file():
        shutil.rmtree(folder, ignore_errors=True)
    try:
        partial.rename(folder)
    except OSError:
        if not (folder / ".complete").is_file():
            raise
        shutil.rmtree(partial, ignore_errors=True)
    return folder


def _prune_botocore_models(site: Path) -> None:
    """Keep the service models of ``BOTOCORE_SERVICES`` (and botocore's shared data files) only."""
    data = site / "botocore" / "data"
    if not data.is_dir():
        return
    unknown = [name for name in BOTOCORE_SERVICES if not (data / name).is_dir()]
    if unknown:
        raise PackagingError(f"BOTOCORE_SERVICES names services botocore does not have: {', '.join(unknown)}")
    for entry in data.iterdir():
        if entry.is_dir() and entry.name not in BOTOCORE_SERVICES:
            shutil.rmtree(entry)
    # The legacy endpoint data (1.2 MB, decoded whole when the first client is made): the kept
    # services' entries and every partition's own data, unchanged.
    endpoints_file = data / "endpoints.json"
    endpoints = json.loads(endpoints_file.read_text())
    for partition in endpoints["partitions"]:
        partition["services"] = {name: value for name, value in partition["services"].items()
                                 if name in BOTOCORE_SERVICES}  # fmt: skip
    endpoints_file.write_text(json.dumps(endpoints, separators=(",", ":")))
    for compressed in sorted(data.glob("*/*/*.json.gz")):
        _decompress_model(compressed)


def _decompress_model(compressed: Path) -> None:
    """A kept model file as plain JSON, a service model without its documentation: the first client of a
    service reads its model whole, and its documentation (docstrings only) is most of its text. The
    DynamoDB client is made 4 ms sooner on CPython 3.14 (11.6 ms to 7.5, median of five), on the first batch
    of every cold start with idempotency on. botocore reads ``.json`` before ``.json.gz``; the gzip one goes."""
    model = json.loads(gzip.decompress(compressed.read_bytes()))
    if compressed.name == "service-2.json.gz":
        model = _without_documentation(model)
    compressed.with_suffix("").write_text(json.dumps(model, separators=(",", ":")))
    compressed.unlink()


def _without_documentation(node: Any) -> Any:
    """``node`` without its documentation strings (a member named ``documentation`` is a shape, kept)."""
    if isinstance(node, dict):
        return {key: _without_documentation(value) for key, value in node.items()
                if not (key == "documentation" and isinstance(value, str))}  # fmt: skip
    if isinstance(node, list):
        return [_without_documentation(value) for value in node]
    return node


def _drop_scripts(site: Path) -> None:
    """Remove the console scripts the installer wrote to ``bin/`` (jmespath's ``jp.py``) and their lines in RECORD.

    Lambda never runs them, and the installer rewrites their first line to the Python that ran it (this
    machine's virtualenv): kept, they would make the asset differ between two folders or machines.
    """
    scripts = site / "bin"
    if not scripts.is_dir():
        return
    shutil.rmtree(scripts)
    for record in site.glob("*.dist-info/RECORD"):
        lines = record.read_text().splitlines(keepends=True)
        kept = [line for line in lines if not line.startswith(("bin/", "../../bin/"))]
        if kept != lines:
            record.write_text("".join(kept))


def bytecode_compiler(target: Target) -> list[str] | None:
    """A CPython of ``target``'s minor version, installed if needed; None (said in one line) if none."""
    if target.python_version != runtime_python.VERSION:
        print(f"asset built without bytecode: only CPython {runtime_python.VERSION} is looked for, the target runs "
              f"{target.python_version}", file=sys.stderr)  # fmt: skip
        return None
    try:
        return runtime_python.install()
    except (runtime_python.RuntimePythonError, OSError, subprocess.CalledProcessError) as exc:
        print(f"asset built without bytecode: {str(exc).splitlines()[0]}", file=sys.stderr)
        return None


def _compiler_identity(compiler: list[str] | None) -> bytes:
    if compiler is None:
        return b"no-bytecode"
    result = subprocess.run([*compiler, "-c", "import sys; print(sys.version)"],  # noqa: S603
                            capture_output=True, text=True, check=True)  # fmt: skip
    return result.stdout.encode()


def compile_bytecode(compiler: list[str], folder: Path, task_root: str | None = None) -> None:
    """``.pyc`` for every module in ``folder``, valid whatever the files' timestamps. With ``task_root``,
    each records its module's path as under ``task_root`` (``-s`` strips ``folder``, ``-p`` prepends the
    root), not where it was compiled."""
    relocate = ["-s", str(folder), "-p", task_root] if task_root else []
    result = subprocess.run(  # noqa: S603
        [*compiler, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", *relocate,
         str(folder)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise PackagingError(f"compileall failed in {folder}:\n{result.stdout}{result.stderr}")


def build_function_asset(target: Target, source: Path = FUNCTION_SOURCE, cache_dir: Path = CACHE_DIR) -> Path:
    """A folder holding the function's code and its dependencies for ``target``, compiled for it. Processes
    that build one target in one cache take turns: the first builds it, the others find it built (several
    synths at once, as the test suite's workers run them, would each build the same folder)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir / f".{target.architecture}-py{target.python_version}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        return _build_function_asset(target, source, cache_dir)


def _build_function_asset(target: Target, source: Path, cache_dir: Path) -> Path:
    dependencies = build_dependencies(target, cache_dir=cache_dir)
    compiler = bytecode_compiler(target)
    key = _digest(dependencies.name.encode(), _tree_digest(source), _compiler_identity(compiler))
    prefix = f"consumer-{target.architecture}-py{target.python_version}-"
    staging = cache_dir / f"{prefix}{key}"
    if (staging / ".complete").is_file():
        return staging
    partial = _partial(cache_dir)
    shutil.copytree(dependencies, partial, ignore=shutil.ignore_patterns(".complete"), dirs_exist_ok=True)
    shutil.copytree(source, partial, ignore=_IGNORED, dirs_exist_ok=True)
    if compiler is not None:
        compile_bytecode(compiler, partial, task_root=TASK_ROOT)
    # The marker is excluded from the asset by the stack (see consumer_function.py).
    _publish(partial, staging)
    for stale in cache_dir.glob(f"{prefix}*"):
        if stale != staging:
            shutil.rmtree(stale, ignore_errors=True)
    return staging
