"""cdk-nag (AwsSolutions), cfn-lint and checkov on every stage's template, and the asset's platform."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack, Validations
from aws_cdk import aws_sqs as sqs
from cdk_nag import AwsSolutionsChecks

from infra.app import build_app
from infra.consumer_function import TARGET
from infra.packaging import BOTOCORE_SERVICES, build_function_asset
from tests.infra.test_production import FULL
from tests.infra.test_sqs_consumer import TWO_CONSUMERS
from tests.support.shared import built_once

ROOT = Path(__file__).resolve().parents[2]
CHECKOV = ROOT / ".cache" / "checkov" / "bin" / "checkov"
# Every stage of cdk.json, one with every production option on (VPC, secrets, producers, pollers), and
# one stack with a standard and a FIFO consumer.
SCANNED = {
    **json.loads((ROOT / "cdk.json").read_text())["context"]["stages"],
    "options": {**{k: v for k, v in FULL.items() if k != "alarm_topic_arn"}, "alarm_email": "oncall@example.com"},
    "two-consumers": TWO_CONSUMERS,
}


def _synthesize_and_scan(folder: Path) -> None:
    """Each scanned stage synthesized as `cdk synth` does it (a cdk-nag finding would raise ValidationFailed),
    then cfn-lint and checkov each run once over all the templates: most of their time is their start."""
    templates = {}
    for stage, settings in SCANNED.items():
        app = App(outdir=str(folder / stage), context={"stage": stage, "stages": {stage: settings}})
        stack = build_app(app)
        templates[stage] = str(Path(app.synth().directory) / f"{stack.stack_name}.template.json")
    (folder / "templates.json").write_text(json.dumps(templates))
    lint = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), "--format", "parseable", *templates.values()],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    (folder / "cfn-lint.json").write_text(json.dumps({"returncode": lint.returncode, "stdout": lint.stdout}))
    (folder / "checkov.json").write_text(json.dumps(checkov(*map(Path, templates.values()))))


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_once(tmp_path_factory, "scanned-stages", _synthesize_and_scan)


@pytest.fixture(scope="module")
def synthesized(scanned: Path) -> dict[str, tuple[Path, Path]]:
    """Each scanned stage's assembly folder and template."""
    templates = json.loads((scanned / "templates.json").read_text())
    return {stage: (Path(path).parent, Path(path)) for stage, path in templates.items()}


@pytest.mark.parametrize("stage", sorted(SCANNED))
def test_cdk_nag_reports_no_findings(synthesized, stage):
    assembly, _ = synthesized[stage]
    report = json.loads((assembly / "validation-report.json").read_text())
    assert [violation for plugin in report["pluginReports"] for violation in plugin["violations"]] == []
    # An acknowledged finding carries its reason (the ENI actions of a function in a VPC).
    for plugin in report["pluginReports"]:
        for suppressed in plugin.get("suppressedViolations", []):
            assert len(suppressed.get("reason", "")) > 40, suppressed


def test_cdk_nag_is_active_on_such_an_app():
    # A deliberately non-compliant queue must be caught, or the test above proves nothing.
    app = App()
    stack = Stack(app, "Bad")
    sqs.Queue(stack, "Plain")
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    with pytest.raises(RuntimeError, match=r"ValidationFailed(.|\n)*AwsSolutions-SQS4"):
        app.synth()


@pytest.mark.parametrize("stage", sorted(SCANNED))
def test_cfn_lint_finds_no_errors(scanned, synthesized, stage):
    _, template = synthesized[stage]
    result = json.loads((scanned / "cfn-lint.json").read_text())
    lines = [line for line in result["stdout"].splitlines() if line.startswith(f"{template}:")]
    errors = [line for line in lines if ":E" in line]
    assert errors == [], "\n".join(lines)
    # 0: clean, 4: warnings only; errors set bit 2 (of any template: each stage's are listed above).
    assert result["returncode"] in (0, 4), result["stdout"]


def checkov(*templates: Path) -> dict[str, Any]:
    files = [argument for template in templates for argument in ("--file", str(template))]
    result = subprocess.run(
        [str(CHECKOV), *files, "--framework", "cloudformation", "--output", "json", "--skip-download", "--compact"],
        capture_output=True, text=True, check=False, env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )  # fmt: skip
    assert result.stdout.strip(), f"checkov printed nothing (make setup installs it):\n{result.stderr[-2000:]}"
    report: dict[str, Any] = json.loads(result.stdout)
    return report


@pytest.mark.parametrize("stage", sorted(SCANNED))
def test_checkov_fails_no_check_and_every_skip_carries_its_reason(scanned, synthesized, stage):
    _, template = synthesized[stage]
    every = json.loads((scanned / "checkov.json").read_text())["results"]
    assert every["parsing_errors"] == []
    kinds = ("passed_checks", "failed_checks", "skipped_checks")
    results = {kind: [c for c in every[kind] if Path(c["file_abs_path"]) == template] for kind in kinds}
    failed = [(c["check_id"], c["resource"]) for c in results["failed_checks"]]
    assert failed == []
    assert results["passed_checks"]
    decisions = (ROOT / "docs" / "decisions" / "027-checkov-skips.md").read_text()
    for skipped in results["skipped_checks"]:
        reason = skipped["check_result"].get("suppress_comment", "")
        assert len(reason) > 40, (skipped["check_id"], reason)
        assert skipped["check_id"] in decisions, (
            f"{skipped['check_id']} is skipped but not listed in 027-checkov-skips.md"
        )


def test_checkov_is_active_on_a_careless_template(tmp_path):
    # A Lambda function with none of the stack's settings must fail, or the test above proves nothing.
    template = tmp_path / "careless.json"
    template.write_text(json.dumps({"Resources": {"Fn": {"Type": "AWS::Lambda::Function", "Properties": {
        "Runtime": "python3.14", "Handler": "a.b", "Role": "arn:aws:iam::123456789012:role/r",
        "Code": {"ZipFile": "x"}}}}}))  # fmt: skip
    failed = {c["check_id"] for c in checkov(template)["results"]["failed_checks"]}
    assert {"CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_115"} <= failed


def test_asset_compiled_dependency_matches_function_platform():
    asset = build_function_asset(TARGET)
    compiled = list(asset.glob("pydantic_core/_pydantic_core.*.so"))
    assert [path.name for path in compiled] == [f"_pydantic_core.{TARGET.abi_tag}.so"]
    assert TARGET.abi_tag == "cpython-314-aarch64-linux-gnu"
    assert (asset / "sqs_consumer" / "handler.py").is_file()
    # Bytecode of the runtime's Python only: nothing compiled by the Python that ran the build.
    assert {path.name.split(".")[-2] for path in asset.rglob("*.pyc")} == {"cpython-314"}


def _client_endpoint(data: Path, service: str, region: str, *, fips: bool = False) -> str:
    import botocore.loaders
    import botocore.session
    from botocore.config import Config

    session = botocore.session.Session()
    session.register_component(
        "data_loader", botocore.loaders.Loader(extra_search_paths=[str(data)], include_default_search_paths=False)
    )
    client = session.create_client(service, region_name=region, aws_access_key_id="a", aws_secret_access_key="b",
                                   config=Config(use_fips_endpoint=fips))  # fmt: skip
    return str(client.meta.endpoint_url)


def test_the_asset_keeps_only_its_botocore_models_and_resolves_their_endpoints_as_botocore_does():
    import botocore

    asset = build_function_asset(TARGET)
    kept = asset / "botocore" / "data"
    assert (asset / "botocore" / "__init__.py").read_text().count(f"__version__ = '{botocore.__version__}'") == 1
    assert sorted(path.name for path in kept.iterdir() if path.is_dir()) == sorted(BOTOCORE_SERVICES)
    full = Path(botocore.__file__).parent / "data"
    regions = (("us-east-1", False), ("us-east-1", True), ("eu-central-1", False), ("cn-north-1", False),
               ("us-gov-west-1", True), ("us-isob-east-1", False), ("eusc-de-east-1", False))  # fmt: skip
    for service in BOTOCORE_SERVICES:
        for region, fips in regions:
            pruned, whole = (_client_endpoint(data, service, region, fips=fips) for data in (kept, full))
            assert pruned == whole, (service, region, fips)
