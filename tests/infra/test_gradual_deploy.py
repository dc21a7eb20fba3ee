"""Gradual deploys: CodeDeploy shifts the `live` alias the mapping invokes to a new version, canary or
linear, and rolls back when the function errors or quarantines meanwhile; prod has it on."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Template

from tests.infra.conftest import synth
from tests.infra.test_production import STAGES


@pytest.fixture(scope="module")
def canary() -> Template:
    return Template.from_stack(synth("gradual", gradual_deploy="canary")[1])


def test_the_mapping_invokes_the_live_alias_that_codedeploy_shifts(canary: Template):
    [(alias_id, alias)] = canary.find_resources("AWS::Lambda::Alias").items()
    assert alias["Properties"]["Name"] == "live"
    # CloudFormation hands the alias's update to CodeDeploy, which shifts its weights.
    [(group_id, _)] = canary.find_resources("AWS::CodeDeploy::DeploymentGroup").items()
    assert alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]["DeploymentGroupName"] == {"Ref": group_id}
    [mapping] = canary.find_resources("AWS::Lambda::EventSourceMapping").values()
    assert alias_id in json.dumps(mapping["Properties"]["FunctionName"])


def test_a_canary_rolls_back_on_the_function_errors_and_dlq_arrivals_alarms(canary: Template):
    [group] = canary.find_resources("AWS::CodeDeploy::DeploymentGroup").values()
    properties = group["Properties"]
    assert properties["DeploymentConfigName"] == "CodeDeployDefault.LambdaCanary10Percent5Minutes"
    rollback = properties["AutoRollbackConfiguration"]
    assert rollback["Enabled"] is True
    assert set(rollback["Events"]) == {"DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_REQUEST", "DEPLOYMENT_STOP_ON_ALARM"}
    alarms = {json.dumps(alarm["Name"]) for alarm in properties["AlarmConfiguration"]["Alarms"]}
    assert properties["AlarmConfiguration"]["Enabled"] is True
    assert len(alarms) == 2
    assert any("FunctionErrors" in name for name in alarms) and any(
        "DeadLetterQueueArrivals" in name for name in alarms
    )


def test_linear_shifts_ten_percent_a_minute():
    template = Template.from_stack(synth("gradual", gradual_deploy="linear")[1])
    template.has_resource_properties(
        "AWS::CodeDeploy::DeploymentGroup",
        {"DeploymentConfigName": "CodeDeployDefault.LambdaLinear10PercentEvery1Minute"},
    )


def test_prod_deploys_gradually_and_dev_at_once(template: Template):
    prod = Template.from_stack(synth("prod", **STAGES["prod"])[1])
    assert len(prod.find_resources("AWS::CodeDeploy::DeploymentGroup")) == 1
    assert template.find_resources("AWS::CodeDeploy::DeploymentGroup") == {}
    assert template.find_resources("AWS::Lambda::Alias") == {}
