"""Stage settings name AWS ids and zones by AWS's patterns: one clear error per bad value, before any synth."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from infra.check_settings import main
from infra.settings import StackSettings, StackSettingsError

ROOT = Path(__file__).resolve().parents[2]
VPC = {
    "vpc_id": "vpc-0123456789abcdef0",
    "availability_zones": ["us-west-2a", "us-west-2-lax-1a"],
    "private_subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
    "private_subnet_route_table_ids": ["rtb-0123456789abcdef0", "rtb-0123456789abcdef1"],
    "dynamodb_prefix_list_id": "pl-00a54069",
    "s3_prefix_list_id": "pl-02cd2c6b",
}


def problems(vpc: dict) -> list[str]:
    with pytest.raises(StackSettingsError) as raised:
        StackSettings.for_stage("bad", {"bad": {"vpc": vpc}})
    return str(raised.value).removeprefix("invalid settings for stage 'bad': ").split("; ")


def test_valid_zones_and_ids_including_a_local_zone_are_accepted():
    assert StackSettings.for_stage("ok", {"ok": {"vpc": VPC}}).vpc is not None


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("availability_zones", ["banana", "eu-west-1b"], "vpc.availability_zones.0: 'banana' is not an availability "
                                                         "zone name (for example eu-west-1a)"),
        ("private_subnet_ids", ["subnet-xyz", "subnet-0123456789abcdef1"], "vpc.private_subnet_ids.0: 'subnet-xyz' is "
                                                                          "not a subnet id (for example "
                                                                          "subnet-0123456789abcdef0)"),
        ("private_subnet_route_table_ids", ["rtb-0123456789abcdef0", "subnet-0123456789abcdef1"],
         "vpc.private_subnet_route_table_ids.1: 'subnet-0123456789abcdef1' is not a route table id"),
        ("vpc_id", "vpc-1", "vpc.vpc_id: 'vpc-1' is not a VPC id"),
    ],
)  # fmt: skip
def test_a_bad_value_is_one_error_that_names_it(field, value, message):
    found = problems({**VPC, field: value})

    assert len(found) == 1, found
    assert found[0].startswith(message)


def test_two_bad_values_are_two_errors():
    found = problems({**VPC, "availability_zones": ["banana", "apple"]})

    assert [problem.split(":")[0] for problem in found] == ["vpc.availability_zones.0", "vpc.availability_zones.1"]


def test_no_zone_at_all_is_one_error():
    empty = {**VPC, "availability_zones": [], "private_subnet_ids": [], "private_subnet_route_table_ids": []}

    assert problems(empty) == ["vpc: vpc needs at least one availability zone, with its private subnet and route table"]


def test_check_settings_prints_one_line_and_exits_1(tmp_path, capsys):
    cdk_json = tmp_path / "cdk.json"
    bad = {"vpc": {**VPC, "availability_zones": ["banana", "b"]}}
    cdk_json.write_text(json.dumps({"context": {"stages": {"bad": bad}}}))

    assert main(["bad", "--cdk-json", str(cdk_json)]) == 1

    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: invalid settings for stage 'bad': vpc.availability_zones.0: 'banana' is not")


def test_check_settings_accepts_every_stage_of_cdk_json(capsys):
    for stage in json.loads((ROOT / "cdk.json").read_text())["context"]["stages"]:
        assert main([stage]) == 0, capsys.readouterr().err


def test_make_checks_the_settings_before_the_cdk_cli_runs():
    # make -n prints the recipe without running it
    for target in ("synth", "diff", "deploy", "destroy"):
        recipe = subprocess.run(["make", "-n", "-o", "setup", target, "STAGE=prod"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout.splitlines()  # fmt: skip
        # synth runs the CLI through infra.cdk_run (a stop stops its app too)
        commands = [line for line in recipe if "check_settings" in line or line.startswith("cdk ") or "cdk_run" in line]
        assert commands[0].endswith("-m infra.check_settings prod"), recipe
        assert commands[1].startswith(f"cdk {target}") or f"-m infra.cdk_run {target} " in commands[1], recipe
