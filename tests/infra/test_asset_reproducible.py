"""The same sources give the same function asset wherever they are built.

CDK names the asset (its S3 key, and so the function's Code in the template) by a hash of the
folder's relative paths and file contents. Anything in the folder that depends on where it was
built (the build folder's path in the bytecode, the building Python's path in a script's first
line) makes `cdk diff` from a laptop against CI show a code change that is not one.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from aws_cdk import FileSystem

from infra import runtime_python
from infra.consumer_function import TARGET
from infra.packaging import FUNCTION_SOURCE, TASK_ROOT, build_function_asset

pytestmark = pytest.mark.e2e


def content_hashes(folder: Path) -> dict[str, str]:
    """Each file's path relative to ``folder`` and the SHA-256 of its bytes."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def cdk_asset_hash(folder: Path) -> str:
    """The hash CDK gives the folder as the function's asset (its exclusions as in consumer_function.py)."""
    return FileSystem.fingerprint(str(folder), exclude=[".complete"])


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The deployed target's asset built from two copies of the sources, in two folders of different depths,
    each with a cache of its own (so nothing is shared but the pinned requirements)."""
    if runtime_python.find() is None:
        pytest.skip(f"no CPython {runtime_python.VERSION} here (make setup installs one): the asset has no bytecode")
    assets = []
    for name in ("a", "a-longer-folder/nested"):
        root = tmp_path_factory.mktemp("build") / name
        source = root / "functions" / "consumer"
        shutil.copytree(FUNCTION_SOURCE, source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        assets.append(build_function_asset(TARGET, source=source, cache_dir=root / "cache"))
    return assets[0], assets[1]


def test_asset_built_in_two_folders_has_the_same_files_and_the_same_cdk_hash(two_builds):
    # GIVEN the asset built from the same sources in two different folders
    first, second = two_builds

    # WHEN their files are compared byte for byte
    ours, theirs = content_hashes(first), content_hashes(second)

    # THEN they hold the same files with the same bytes, so CDK gives them one asset hash
    differing = sorted(name for name in ours.keys() & theirs.keys() if ours[name] != theirs[name])
    assert ours.keys() == theirs.keys(), f"files in one build only: {sorted(ours.keys() ^ theirs.keys())[:10]}"
    assert not differing, f"{len(differing)} files differ between two builds of the same sources: {differing[:10]}"
    assert cdk_asset_hash(first) == cdk_asset_hash(second)


def test_asset_bytecode_names_each_module_by_its_path_in_the_lambda_task_folder(two_builds):
    # GIVEN the compiled handler module of a build
    asset = two_builds[0]
    compiled = asset / "sqs_consumer" / "__pycache__" / f"handler.cpython-{runtime_python.VERSION.replace('.', '')}.pyc"

    # WHEN its bytes are read (this Python's marshal cannot load 3.14's code objects: the path is looked
    # for in the bytes, where marshal writes it as is)
    data = compiled.read_bytes()

    # THEN the path it records is where Lambda runs it, not the build folder
    expected = f"{TASK_ROOT}/sqs_consumer/handler.py".encode()
    assert expected in data
    assert str(asset.parent).encode() not in data, "the build folder (the cache the asset was built in)"
    assert not (asset / "bin").exists(), "console scripts name the building Python in their first line"


def test_the_dependency_folder_owns_its_files_so_the_build_edits_no_installers_cache(two_builds):
    # GIVEN each build's dependency folder, whose files the build edits in place (botocore's endpoints.json)
    dependency_folders = [folder for asset in two_builds for folder in asset.parent.glob("deps-*")]
    assert len(dependency_folders) == 2

    # WHEN the links of each file are counted
    linked = [
        str(path)
        for folder in dependency_folders
        for path in folder.rglob("*")
        if path.is_file() and path.stat().st_nlink > 1
    ]

    # THEN none is a hard link into uv's cache (an edit would change the cache and every environment linked to it)
    assert not linked, f"{len(linked)} files are hard links, e.g. {linked[:3]}"
