"""A stage names its AWS account: a deploy with another account's credentials is refused before anything
is made (at synth when the stack's account is known, else by a template rule CloudFormation checks first)."""

from __future__ import annotations

import pytest
from aws_cdk import App, Environment
from aws_cdk.assertions import Annotations, Match, Template

from infra.settings import StackSettings, StackSettingsError
from infra.stack import ConsumerStack
from tests.infra.conftest import synth

ACCOUNT = "123456789012"


def test_a_stage_with_an_account_is_refused_by_cloudformation_in_any_other():
    _, stack = synth("dev", account=ACCOUNT)

    rules = Template.from_stack(stack).to_json()["Rules"]
    [assertion] = rules["DeployedToTheStagesAccount"]["Assertions"]
    assert assertion["Assert"] == {"Fn::Equals": [{"Ref": "AWS::AccountId"}, ACCOUNT]}
    assert f"stage dev deploys to account {ACCOUNT} only" in assertion["AssertDescription"]


def test_a_stage_synthesized_for_another_known_account_fails_synth_naming_both():
    with pytest.raises(StackSettingsError, match=f"stage dev deploys to account {ACCOUNT}, not 210987654321"):
        ConsumerStack(App(), "SqsConsumer-dev", stage="dev", settings=StackSettings(account=ACCOUNT),
                      env=Environment(account="210987654321", region="eu-west-1"))  # fmt: skip


def test_a_production_stage_without_an_account_warns_and_one_with_it_does_not():
    _, unnamed = synth("prod", alarm_email="oncall@ops.acme.io")
    Annotations.from_stack(unnamed).has_warning("*", Match.string_like_regexp("stage prod names no account"))
    _, named = synth("prod", alarm_email="oncall@ops.acme.io", account=ACCOUNT)
    assert Annotations.from_stack(named).find_warning("*", Match.string_like_regexp("names no account")) == []
    _, dev = synth("dev")
    assert (
        "Rules" not in Template.from_stack(dev).to_json()
        or "DeployedToTheStagesAccount" not in (Template.from_stack(dev).to_json()["Rules"])
    )


@pytest.mark.parametrize("account", ["12345", "1234567890123", "abcdefghijkl"])
def test_an_account_that_is_not_twelve_digits_is_refused_naming_the_setting(account):
    with pytest.raises(StackSettingsError, match=r"account: String should match pattern"):
        StackSettings.for_stage("x", {"x": {"account": account}})


def test_a_consumer_cannot_name_an_account_of_its_own():
    with pytest.raises(StackSettingsError, match="account"):
        StackSettings.consumers_for_stage("x", {"x": {"consumers": {"orders": {"account": ACCOUNT}}}})
