"""The deploy role stack: only the repository's jobs in its GitHub environments get credentials, by OIDC."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk import App
from aws_cdk.assertions import Match, Template

from infra.deploy_role import build_deploy_role_app
from infra.settings import StackSettingsError

ROOT = Path(__file__).resolve().parents[2]
EXISTING = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"


def template(**context: str) -> Template:
    return Template.from_stack(build_deploy_role_app(App(context=context)))


def _subjects(t: Template, role: str) -> list[str]:
    [resource] = [r for lid, r in t.find_resources("AWS::IAM::Role").items() if lid.startswith(role)]
    [statement] = resource["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    return statement["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"]


def test_each_environment_has_a_deploy_role_of_its_own_trusted_by_its_token_only_through_github_oidc():
    t = template(github_repository="acme/orders")

    t.has_resource_properties("AWS::IAM::OIDCProvider", {
        "Url": "https://token.actions.githubusercontent.com", "ClientIdList": ["sts.amazonaws.com"]})  # fmt: skip
    for role, environment in (("GitHubDeployRoleDev", "dev"), ("GitHubDeployRoleProd", "prod")):
        assert _subjects(t, role) == [f"repo:acme/orders:environment:{environment}"]
    t.has_resource_properties("AWS::IAM::Role", {
        "MaxSessionDuration": 3600,
        "AssumeRolePolicyDocument": {"Statement": [{
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Effect": "Allow",
            "Principal": {"Federated": {"Fn::GetAtt": [Match.string_like_regexp("GitHubOidcProvider"), "Arn"]}},
            "Condition": {"StringEquals": {
                "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
                "token.actions.githubusercontent.com:sub": ["repo:acme/orders:environment:dev"]}},
        }]},
    })  # fmt: skip


def _statements(t: Template, role: str) -> list[dict]:
    [policy] = [p for p in t.find_resources("AWS::IAM::Policy").values()
                if p["Properties"]["Roles"][0]["Ref"].startswith(role)]  # fmt: skip
    return policy["Properties"]["PolicyDocument"]["Statement"]


def _bootstrap_roles(t: Template, role: str) -> set[str]:
    """The CDK bootstrap roles the policy of ``role`` (a logical id prefix) may assume."""
    [statement] = [s for s in _statements(t, role) if "sts:AssumeRole" in s["Action"]]
    assert statement["Action"] == ["sts:AssumeRole", "sts:TagSession"]
    resources = json.dumps(statement["Resource"])
    assert "*" not in resources
    return set(re.findall(r":role/cdk-hnb659fds-([a-z-]+)-role-", resources))


def test_a_dev_job_cannot_reach_prod_neither_by_prods_role_nor_through_its_own():
    t = template(github_repository="acme/orders")

    # A dev job's token names environment dev: prod's role does not accept it.
    assert "repo:acme/orders:environment:dev" not in _subjects(t, "GitHubDeployRoleProd")
    # Dev's role may assume the bootstrap roles only, never another GitHub role ...
    for statement in _statements(t, "GitHubDeployRoleDev"):
        if "sts:AssumeRole" in statement["Action"]:
            assert "GitHubDeployRole" not in json.dumps(statement["Resource"])
    # ... and its smoke test reaches dev's stage only.
    [smoke] = [s for s in _statements(t, "GitHubDeployRoleDev") if s.get("Sid") == "SmokeTestOwnStage"]
    assert smoke["Action"] == ["dynamodb:GetItem", "lambda:GetFunctionConfiguration", "sqs:SendMessage"]
    reached = json.dumps(smoke["Resource"])
    assert reached.count("SqsConsumer-dev-*") == 3 and "prod" not in reached


def test_a_prod_account_gets_the_prod_role_alone():
    t = template(github_repository="acme/orders", deploy_environments="prod")

    deploy_roles = [lid for lid in t.find_resources("AWS::IAM::Role") if lid.startswith("GitHubDeployRole")]
    assert len(deploy_roles) == 1 and deploy_roles[0].startswith("GitHubDeployRoleProd")
    assert set(t.find_outputs("*")) == {"DeployRoleArnProd", "DiffRoleArn"}


def test_the_deploy_role_may_only_assume_the_cdk_bootstrap_roles():
    for role in ("GitHubDeployRoleDev", "GitHubDeployRoleProd"):
        assert _bootstrap_roles(template(github_repository="acme/orders"), role) == {
            "deploy", "file-publishing", "lookup"}  # fmt: skip


def test_the_diff_role_is_read_only_and_trusted_by_the_prod_diff_environment():
    t = template(github_repository="acme/orders")

    assert _bootstrap_roles(t, "GitHubDiffRole") == {"lookup"}
    host = "token.actions.githubusercontent.com"
    condition = {"StringEquals": {f"{host}:aud": "sts.amazonaws.com",
                                  f"{host}:sub": ["repo:acme/orders:environment:prod-diff"]}}  # fmt: skip
    t.has_resource_properties("AWS::IAM::Role", {"AssumeRolePolicyDocument": {"Statement": [
        Match.object_like({"Condition": condition})]}})  # fmt: skip


def test_an_existing_provider_is_reused():
    t = template(github_repository="acme/orders", oidc_provider_arn=EXISTING)

    t.resource_count_is("AWS::IAM::OIDCProvider", 0)
    t.has_resource_properties("AWS::IAM::Role", {"AssumeRolePolicyDocument": {"Statement": [
        Match.object_like({"Principal": {"Federated": EXISTING}})]}})  # fmt: skip


BAD = [
    {},
    {"github_repository": "not a repo"},
    {"github_repository": "a/b", "oidc_provider_arn": "arn:aws:iam::1:x"},
    {"github_repository": "a/b", "deploy_environments": "dev Prod!"},
]


@pytest.mark.parametrize("context", BAD)
def test_bad_settings_say_what_to_pass(context):
    with pytest.raises(StackSettingsError, match=r"invalid deploy role settings: .*make deploy-role"):
        build_deploy_role_app(App(context=context))


def test_the_deploy_role_app_synthesizes_with_cdk_nag_as_the_cli_runs_it(tmp_path):
    env = {**os.environ, "CDK_CONTEXT_JSON": json.dumps({"github_repository": "acme/orders"}),
           "CDK_OUTDIR": str(tmp_path)}  # fmt: skip
    result = subprocess.run([sys.executable, "-m", "infra.deploy_role"], cwd=ROOT, env=env, capture_output=True,
                            text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "SqsConsumer-deploy-role.template.json").is_file()
    report = tmp_path / "validation-report.json"
    # No finding; the smoke test's stage-scoped wildcards acknowledged, each with its reason.
    plugins = json.loads(report.read_text()).get("pluginReports", []) if report.exists() else []
    assert [v for plugin in plugins for v in plugin["violations"]] == []
    acknowledged = [v for plugin in plugins for v in plugin.get("suppressedViolations", [])]
    assert {v["ruleName"].split("[")[0] for v in acknowledged} <= {"AwsSolutions-IAM5"}
    assert all("smoke test" in v["reason"] and "SqsConsumer-" in v["ruleName"] for v in acknowledged)
