"""``make release``: the wheel and the function's asset zip of this version, the same bytes wherever built.

The wheel (``sqs-lambda-consumer``) holds two top-level packages, so a team's own ``infra/`` or
``publisher/`` never collides with ours:

- ``sqs_consumer_cdk``: the construct (``SqsConsumer``, ``ConsumerStack``) and what it imports of
  ``infra/``, found by following its imports; their ``infra`` imports are renamed to the package's
  name as they are copied. The function's source and its pinned requirements travel inside it
  (``function/``, ``function-requirements.txt``): the construct builds the asset from them;
- ``sqs_consumer``: the function's runtime (handler, pipeline, test kit), for a team's handlers and tests.

Its dependencies are declared from the pinned files (the tested version up to the next major; the asset
itself is built from the exact pins). The asset zip is the arm64 asset ``cdk synth`` builds, zipped.

Both are byte-identical between two folders or machines: entries sorted, every timestamp
``SOURCE_DATE_EPOCH`` (default: the commit's time), modes 0644, one compression level; the asset's
bytecode already names ``/var/task`` (infra/packaging.py). ``dist/SHA256SUMS`` lists their hashes.
``--tag v<version>`` tags the commit (on a clean tree whose CHANGELOG.md has that version's section).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIST = ROOT / "dist"
PACKAGE = "sqs_consumer_cdk"
DISTRIBUTION = "sqs-lambda-consumer"
ENTRY_MODULES = ("infra.sqs_consumer", "infra.stack", "infra.app")
# The construct's own dependencies (the pins of requirements-dev.txt), the runtime's are requirements.txt's; uv
# installs the asset's wheels for Lambda's platform (`uv pip install --python-platform ...`, infra/packaging.py).
CONSTRUCT_DEPENDENCIES = ("aws-cdk-lib", "constructs", "cdk-nag", "pydantic", "uv")
RUNTIME_DEPENDENCIES = ("aws-lambda-powertools", "pydantic", "boto3")
ZIP_EPOCH_FLOOR = 315_532_800  # 1980-01-01, the earliest time a zip entry can hold
_IMPORT = re.compile(r"^(\s*)(from|import) infra(?=[\s.])", flags=re.MULTILINE)


class ReleaseError(RuntimeError):
    """The release cannot be built or tagged; the message says why."""


def version(root: Path = ROOT) -> str:
    return str(tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"])


def source_date_epoch(root: Path = ROOT) -> int:
    """``SOURCE_DATE_EPOCH`` if set, else the time of the commit checked out, else 1980."""
    if os.environ.get("SOURCE_DATE_EPOCH", "").isdigit():
        return max(int(os.environ["SOURCE_DATE_EPOCH"]), ZIP_EPOCH_FLOOR)
    commit = subprocess.run(["git", "-C", str(root), "log", "-1", "--format=%ct"],  # noqa: S603, S607
                            capture_output=True, text=True, check=False)  # fmt: skip
    return max(int(commit.stdout.strip() or 0), ZIP_EPOCH_FLOOR)


def infra_closure(root: Path = ROOT, entries: Iterable[str] = ENTRY_MODULES) -> list[str]:
    """The ``infra`` modules the entry modules import, directly or not (by name: ``infra.queues``)."""
    seen: set[str] = set()
    todo = list(entries)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        tree = ast.parse((root / (module.replace(".", "/") + ".py")).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "infra":
                names = [node.module] if node.module != "infra" else [f"infra.{a.name}" for a in node.names]
                todo += [name for name in names if (root / (name.replace(".", "/") + ".py")).is_file()]
    return sorted(seen)


def _pins(root: Path) -> dict[str, str]:
    from infra.packaging import pins  # noqa: PLC0415

    return pins(root / "requirements-dev.txt", root / "requirements.txt")


def dependencies(root: Path = ROOT) -> list[str]:
    """From the tested version up to the next major, for each dependency the wheel declares (before 1.0, up
    to the next minor: a 0.x release may change what the previous one did, as uv's do)."""
    pinned = _pins(root)
    declared = []
    for name in sorted({*CONSTRUCT_DEPENDENCIES, *RUNTIME_DEPENDENCIES}):
        if name not in pinned:
            raise ReleaseError(f"{name} is not pinned in requirements-dev.txt or requirements.txt")
        tested = pinned[name].split("==")[1]
        major, minor = (int(part) for part in tested.split(".")[:2])
        declared.append(f"{name}>={tested},<{major + 1 if major else f'0.{minor + 1}'}")
    return declared


def stage(folder: Path, root: Path = ROOT) -> None:
    """The wheel's source tree in ``folder``: both packages and a pyproject.toml."""
    package = folder / PACKAGE
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('"""The SqsConsumer construct and its stack, from sqs-lambda-consumer."""\n')
    for module in infra_closure(root):
        if module == "infra":
            continue
        text = (root / (module.replace(".", "/") + ".py")).read_text()
        (package / f"{module.split('.', 1)[1]}.py").write_text(_IMPORT.sub(rf"\1\2 {PACKAGE}", text))
    ignored = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", "tests")
    shutil.copytree(root / "functions" / "consumer", package / "function", ignore=ignored)
    shutil.copyfile(root / "requirements.txt", package / "function-requirements.txt")
    shutil.copytree(root / "functions" / "consumer" / "sqs_consumer", folder / "sqs_consumer", ignore=ignored)
    (folder / "pyproject.toml").write_text(_pyproject(root))


def _pyproject(root: Path) -> str:
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    listed = ",\n".join(f'    "{line}"' for line in dependencies(root))
    return f'''[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "{DISTRIBUTION}"
version = "{project["version"]}"
description = "{project["description"]}"
requires-python = "{project["requires-python"]}"
dependencies = [
{listed},
]

[tool.setuptools.packages.find]
include = ["{PACKAGE}*", "sqs_consumer*"]

[tool.setuptools.package-data]
"*" = ["*.txt", "*.toml", "*.json", "py.typed"]
'''


def normalize_zip(source: Path, target: Path, epoch: int) -> None:
    """``source`` rewritten as ``target``: its entries sorted, each with the time ``epoch``, mode 0644."""
    stamp = _zip_time(epoch)
    with zipfile.ZipFile(source) as read, zipfile.ZipFile(target, "w") as write:
        for name in sorted(read.namelist()):
            if name.endswith("/"):
                continue
            _write_entry(write, name, read.read(name), stamp)


def zip_folder(folder: Path, target: Path, epoch: int, exclude: Iterable[str] = (".complete",)) -> None:
    """Every file under ``folder`` into ``target``, as ``normalize_zip`` lays entries out."""
    stamp, skipped = _zip_time(epoch), set(exclude)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in skipped)
    with zipfile.ZipFile(target, "w") as write:
        for path in files:
            _write_entry(write, path.relative_to(folder).as_posix(), path.read_bytes(), stamp)


def _zip_time(epoch: int) -> tuple[int, int, int, int, int, int]:
    import time  # noqa: PLC0415

    moment = time.gmtime(epoch)
    return (moment.tm_year, moment.tm_mon, moment.tm_mday, moment.tm_hour, moment.tm_min, moment.tm_sec & ~1)


def _write_entry(archive: zipfile.ZipFile, name: str, data: bytes, stamp: tuple[int, int, int, int, int, int]) -> None:
    info = zipfile.ZipInfo(name, date_time=stamp)
    info.external_attr = 0o100644 << 16
    info.create_system = 3  # Unix, whatever system builds it
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, data, compresslevel=9)


def build_wheel(out: Path, root: Path = ROOT, epoch: int | None = None) -> Path:
    """The wheel of ``root``'s version into ``out``."""
    epoch = source_date_epoch(root) if epoch is None else epoch
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    with tempfile.TemporaryDirectory(prefix="wheel-") as scratch:
        staged, built = Path(scratch) / "src", Path(scratch) / "built"
        stage(staged, root)
        result = subprocess.run(  # noqa: S603
            [uv, "build", "--wheel", "--quiet", "--out-dir", str(built), str(staged)],
            capture_output=True, text=True, check=False, env={**os.environ, "SOURCE_DATE_EPOCH": str(epoch)},
        )  # fmt: skip
        if result.returncode != 0:
            raise ReleaseError(f"the wheel does not build:\n{result.stderr}")
        (wheel,) = built.glob("*.whl")
        out.mkdir(parents=True, exist_ok=True)
        normalize_zip(wheel, out / wheel.name, epoch)
    return out / wheel.name


def build_asset_zip(out: Path, root: Path = ROOT, epoch: int | None = None) -> Path:
    """The function's arm64 asset, as ``cdk synth`` builds it, zipped into ``out``."""
    from infra.consumer_function import TARGET  # noqa: PLC0415
    from infra.packaging import build_function_asset  # noqa: PLC0415

    epoch = source_date_epoch(root) if epoch is None else epoch
    folder = build_function_asset(TARGET)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{DISTRIBUTION}-{version(root)}-function-{TARGET.architecture}-py{TARGET.python_version}.zip"
    zip_folder(folder, target, epoch)
    return target


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tag(expected: str, root: Path = ROOT) -> str:
    """Tag HEAD ``v<version>``, the tag the caller ``expected``: refused on another name, a tree with changes,
    a version without its changelog section, or a tag that exists."""
    name = f"v{version(root)}"
    if expected != name:
        raise ReleaseError(f"pyproject.toml's version makes the tag {name}, not {expected}: raise the version first")
    status = subprocess.run(["git", "-C", str(root), "status", "--porcelain"],  # noqa: S603, S607
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    if status.strip():
        raise ReleaseError(f"the tree has uncommitted changes: commit them before tagging {name}")
    if f"## {version(root)}" not in (root / "CHANGELOG.md").read_text().splitlines():
        raise ReleaseError(f"CHANGELOG.md has no '## {version(root)}' section: write it before tagging {name}")
    exists = subprocess.run(["git", "-C", str(root), "rev-parse", "--verify", "--quiet", f"refs/tags/{name}"],  # noqa: S603, S607
                            capture_output=True, check=False)  # fmt: skip
    if exists.returncode == 0:
        raise ReleaseError(f"the tag {name} exists: raise the version in pyproject.toml for a new release")
    subprocess.run(["git", "-C", str(root), "tag", "-a", name, "-m", f"Release {version(root)}"], check=True)  # noqa: S603, S607
    return name


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.release", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DIST, help="where the artifacts go (default: dist/)")
    parser.add_argument("--tag", metavar="vX.Y.Z", help="tag the commit so once they are built (must be v<version>)")
    args = parser.parse_args(argv)
    try:
        artifacts = [build_wheel(args.out), build_asset_zip(args.out)]
        sums = "".join(f"{sha256(path)}  {path.name}\n" for path in artifacts)
        (args.out / "SHA256SUMS").write_text(sums)
        sys.stdout.write(sums)
        if args.tag:
            name = tag(args.tag)
            sys.stdout.write(f"tagged {name}: push it (git push origin {name}) to deploy prod from it\n")
    except ReleaseError as error:
        sys.stderr.write(f"error: {error}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
