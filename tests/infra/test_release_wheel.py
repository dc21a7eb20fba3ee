"""make release: the wheel installs in a fresh environment and synthesizes a team's two-consumer app from a
folder outside the repository, and two builds in two folders give the same bytes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from infra import runtime_python
from infra.consumer_function import TARGET
from infra.packaging import build_function_asset
from infra.release import build_wheel
from infra.upgrade_check import export

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
UV = str(Path(sys.executable).with_name("uv"))
EPOCH = 1_767_225_600  # 2026-01-01

TEAM_APP = """
from aws_cdk import App, Stack

import infra  # the team's own package of that name
from sqs_consumer_cdk.settings import StackSettings
from sqs_consumer_cdk.sqs_consumer import SqsConsumer, SqsConsumerProps

app = App()
stack = Stack(app, f"Team-{infra.TEAM}")
for name in ("orders", "billing"):
    SqsConsumer(stack, name.title(), SqsConsumerProps(settings=StackSettings(), name=name))
app.synth()
"""


def _files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.rglob("*") if p.is_file() and p.name != ".complete"}  # fmt: skip


def _install(wheel: Path, venv: Path) -> None:
    subprocess.run([UV, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    python = str(venv / "bin" / "python")
    # Offline from uv's cache when it holds every dependency; else from the index.
    offline = subprocess.run([UV, "pip", "install", "--quiet", "--offline", "--python", python, str(wheel)],
                             capture_output=True, check=False)  # fmt: skip
    if offline.returncode != 0:
        subprocess.run([UV, "pip", "install", "--quiet", "--python", python, str(wheel)], check=True)


def test_the_wheel_installs_and_synthesizes_a_two_consumer_app_from_a_folder_outside_the_repository(tmp_path):
    # GIVEN the wheel, installed in a fresh environment, and a team's folder with an infra/ package of its own
    wheel = build_wheel(tmp_path / "dist", epoch=EPOCH)
    _install(wheel, tmp_path / "venv")
    team = tmp_path / "team"
    (team / "infra").mkdir(parents=True)
    (team / "infra" / "__init__.py").write_text('TEAM = "payments"\n')
    (team / "app.py").write_text(TEAM_APP)
    runtime = runtime_python.find()
    path = os.pathsep.join([str(Path(runtime[0]).parent)] if runtime else []) + os.pathsep + os.environ["PATH"]

    # WHEN the app is synthesized there, with nothing of the repository on its path
    # (this machine's certificates kept: the asset's wheels may come from the index, as on a team's machine)
    certificates = {name: os.environ[name] for name in ("SSL_CERT_FILE", "SSL_CERT_DIR") if name in os.environ}
    environment = {"PATH": path, "HOME": os.environ.get("HOME", str(tmp_path)), "CDK_OUTDIR": str(team / "cdk.out"),
                   **certificates}  # fmt: skip
    result = subprocess.run([str(tmp_path / "venv" / "bin" / "python"), "app.py"], cwd=team, env=environment,
                            capture_output=True, text=True, check=False)  # fmt: skip

    # THEN two consumers, each with its queue and a function built from the wheel's own copy of the runtime
    assert result.returncode == 0, result.stderr[-3000:]
    template = json.loads((team / "cdk.out" / "Team-payments.template.json").read_text())
    resources = template["Resources"].values()
    names = {r["Properties"].get("QueueName") for r in resources if r["Type"] == "AWS::SQS::Queue"}
    assert {"Team-payments-orders", "Team-payments-billing"} <= names
    functions = [r for r in resources if r["Type"] == "AWS::Lambda::Function"]
    assert len(functions) == 2 and {f["Properties"]["Architectures"][0] for f in functions} == {"arm64"}
    assets = {path.parent.parent for path in (team / "cdk.out").glob("asset.*/sqs_consumer/handler.py")}
    assert len(assets) == 1, "one asset, with the handler, for both functions"
    # The same bytes as the asset this repository builds: the wheel's copy of the runtime is this one.
    assert _files(assets.pop()) == _files(build_function_asset(TARGET))
    assert (team / ".cache" / "assets").is_dir() and not any((tmp_path / "venv").rglob(".cache"))


def test_the_wheel_declares_its_dependencies_and_namespaced_packages_only(tmp_path):
    wheel = build_wheel(tmp_path, epoch=EPOCH)
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist() if not name.split("/")[0].endswith(".dist-info")}
        metadata = archive.read(next(n for n in archive.namelist() if n.endswith("METADATA"))).decode()
        stack_source = archive.read("sqs_consumer_cdk/stack.py").decode()
        times = {info.date_time for info in archive.infolist()}
    assert tops == {"sqs_consumer_cdk", "sqs_consumer"}
    for dependency in ("aws-cdk-lib", "constructs", "cdk-nag", "pydantic", "aws-lambda-powertools", "boto3"):
        assert f"Requires-Dist: {dependency}" in metadata
    assert "from infra" not in stack_source and "from sqs_consumer_cdk.sqs_consumer import" in stack_source
    assert times == {(2026, 1, 1, 0, 0, 0)}


def test_two_release_builds_in_two_folders_give_the_same_bytes(tmp_path):
    # GIVEN the committed tree in two folders (each builds its own asset from the pinned dependencies)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()  # fmt: skip
    sums = []
    for name in ("first", "second-folder-deeper"):
        tree = tmp_path / name / "src"
        tree.mkdir(parents=True)
        export(commit, tree, ROOT)

        # WHEN make release's command builds there (its own modules, not this tree's)
        environment = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{tree / 'functions' / 'consumer'}",
                       "SOURCE_DATE_EPOCH": str(EPOCH)}  # fmt: skip
        where = subprocess.run([sys.executable, "-c", "import infra.release as r; print(r.__file__)"], cwd=tree,
                               env=environment, capture_output=True, text=True, check=True).stdout  # fmt: skip
        assert where.startswith(str(tree)), where
        subprocess.run([sys.executable, "-m", "infra.release", "--out", str(tree / "dist")], cwd=tree,
                       env=environment, check=True, capture_output=True)  # fmt: skip
        sums.append((tree / "dist" / "SHA256SUMS").read_text())

    # THEN the wheel and the asset zip are the same bytes
    assert sums[0] == sums[1]
    assert [line.split()[1].rsplit(".", 1)[1] for line in sums[0].splitlines()] == ["whl", "zip"]
