"""The rehearsal's pure parts: what LocalStack is given, the default ref, and the command's bad input."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from infra import rehearse
from infra.rehearsal_template import filter_template

TEMPLATE: dict[str, Any] = {
    "Parameters": {"BootstrapVersion": {"Type": "AWS::SSM::Parameter::Value<String>"}, "Stage": {"Type": "String"}},
    "Rules": {"CheckBootstrapVersion": {"Assertions": []}},
    "Resources": {
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "q"}},
        "Table": {"Type": "AWS::DynamoDB::GlobalTable", "Properties": {"TableName": "t"}},
        "Function": {"Type": "AWS::Lambda::Function", "Properties": {"Role": {"Fn::GetAtt": ["Role", "Arn"]}}},
        "Role": {"Type": "AWS::IAM::Role", "Properties": {}},
        "TablePolicy": {"Type": "AWS::IAM::Policy", "Properties": {"Resource": {"Fn::GetAtt": ["Table", "Arn"]}}},
        "ErrorsAlarm": {"Type": "AWS::CloudWatch::Alarm",
                        "Properties": {"Dimensions": [{"Value": {"Ref": "Function"}}]}},
        "Dashboard": {"Type": "AWS::CloudWatch::Dashboard",
                      "Properties": {"Body": {"Fn::Sub": "${ErrorsAlarm.Arn} and ${Queue}"}}},
        "MemoryFilter": {"Type": "AWS::Logs::MetricFilter", "Properties": {}},
        "QueuePolicy": {"Type": "AWS::SQS::QueuePolicy", "DependsOn": ["Function", "Queue"],
                        "Properties": {"Queues": [{"Ref": "Queue"}]}},
    },
    "Outputs": {"QueueUrl": {"Value": {"Ref": "Queue"}}, "FunctionName": {"Value": {"Ref": "Function"}}},
}  # fmt: skip


def test_filter_template_leaves_out_what_localstack_cannot_run_and_all_that_refers_to_it():
    # WHEN
    filtered = filter_template(TEMPLATE)

    # THEN the unsupported types, and to a fixed point what refers to them (the dashboard through the alarm)
    assert filtered.unsupported == {
        "Table": "AWS::DynamoDB::GlobalTable", "Function": "AWS::Lambda::Function",
        "MemoryFilter": "AWS::Logs::MetricFilter",
    }  # fmt: skip
    assert set(filtered.dependent) == {"TablePolicy", "ErrorsAlarm", "Dashboard"}
    assert set(filtered.template["Resources"]) == {"Queue", "Role", "QueuePolicy"}
    assert "3 resource(s) LocalStack does not run" in filtered.summary()


def test_filter_template_drops_ordering_on_left_out_resources_their_outputs_and_the_bootstrap_check():
    filtered = filter_template(TEMPLATE)

    assert filtered.template["Resources"]["QueuePolicy"]["DependsOn"] == ["Queue"]
    assert filtered.template["Outputs"] == {"QueueUrl": {"Value": {"Ref": "Queue"}}}
    assert filtered.template["Parameters"] == {"Stage": {"Type": "String"}}
    assert "Rules" not in filtered.template
    # The input is not changed.
    assert "Function" in TEMPLATE["Resources"] and "Rules" in TEMPLATE


def _repository(path):
    def git(*args):
        subprocess.run(["git", "-C", str(path), *args], check=True, capture_output=True)

    git("init", "-q")
    for message in ("one", "two", "three"):
        git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", message)
    return git


def test_default_ref_is_the_last_release_tag_or_the_previous_commit(tmp_path):
    git = _repository(tmp_path)
    assert rehearse.default_ref(tmp_path) == "HEAD~"

    git("tag", "v0.1.0", "HEAD~")
    git("tag", "not-a-release", "HEAD")
    assert rehearse.default_ref(tmp_path) == "v0.1.0"


@pytest.mark.parametrize("argv", [["--messages", "0"], ["--bogus"]])
def test_rehearse_refuses_bad_arguments_with_usage_and_status_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        rehearse.main(argv)
    assert exit_info.value.code == 2
    assert "usage: python -m infra.rehearse" in capsys.readouterr().err


def test_rehearse_names_an_unknown_ref_and_exits_2(capsys):
    assert rehearse.main(["--from", "no-such-ref-anywhere"]) == 2
    assert "unknown git ref 'no-such-ref-anywhere'" in capsys.readouterr().err
