"""cdk-nag (AwsSolutions) and cfn-lint on the synthesized app, and the asset's platform."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk import App, Stack, Validations
from aws_cdk import aws_sqs as sqs
from cdk_nag import AwsSolutionsChecks

from infra.consumer_function import TARGET
from infra.packaging import BOTOCORE_SERVICES, build_function_asset
from tests.infra.conftest import synth


def test_cdk_nag_reports_no_findings(tmp_path):
    # GIVEN the app with the AwsSolutions pack registered (build_app does it)
    app, _ = synth()
    # WHEN it synthesizes (a finding would raise ValidationFailed)
    assembly = app.synth()
    # THEN the validation report holds no finding
    report = json.loads((Path(assembly.directory) / "validation-report.json").read_text())
    assert report["pluginReports"] == []


def test_cdk_nag_is_active_on_such_an_app():
    # A deliberately non-compliant queue must be caught, or the test above proves nothing.
    app = App()
    stack = Stack(app, "Bad")
    sqs.Queue(stack, "Plain")
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    with pytest.raises(RuntimeError, match=r"ValidationFailed(.|\n)*AwsSolutions-SQS4"):
        app.synth()


def test_cfn_lint_finds_no_errors(tmp_path):
    app, stack = synth()
    assembly = app.synth()
    template = Path(assembly.directory) / f"{stack.stack_name}.template.json"
    result = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), "--format", "parseable", str(template)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    errors = [line for line in result.stdout.splitlines() if ":E" in line]
    assert errors == [], result.stdout
    # 0: clean, 4: warnings only; errors set bit 2.
    assert result.returncode in (0, 4), result.stdout + result.stderr


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
