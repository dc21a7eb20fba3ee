"""The `tracing` stage option: X-Ray active tracing and what the function needs for it, or nothing at all."""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk.assertions import Match, Template

from tests.infra.conftest import synth

ROOT = Path(__file__).resolve().parents[2]
XRAY_ACTIONS = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]


def _function(template: Template) -> dict:
    [function] = template.find_resources(
        "AWS::Lambda::Function", {"Properties": {"Handler": Match.any_value()}}
    ).values()
    return function["Properties"]


def _role_actions(template: Template) -> set[str]:
    actions: set[str] = set()
    for policy in template.find_resources("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            listed = statement["Action"]
            actions.update([listed] if isinstance(listed, str) else listed)
    return actions


def test_tracing_on_makes_tracing_active_with_its_iam_and_tells_the_function():
    template = Template.from_stack(synth("dev", tracing=True)[1])

    function = _function(template)
    assert function["TracingConfig"] == {"Mode": "Active"}
    assert function["Environment"]["Variables"]["TRACING"] == "true"
    assert set(XRAY_ACTIONS) <= _role_actions(template)


def test_tracing_off_leaves_no_trace_in_the_template(template: Template):
    function = _function(template)
    assert "TracingConfig" not in function
    assert "TRACING" not in function["Environment"]["Variables"]
    assert not set(XRAY_ACTIONS) & _role_actions(template)


def test_tracing_is_off_in_dev_and_on_in_prod():
    stages = json.loads((ROOT / "cdk.json").read_text())["context"]["stages"]
    assert not stages["dev"].get("tracing", False)
    assert stages["prod"]["tracing"] is True
