"""The breakers' and rate limits' stage settings: refused at synth with a message that says what to change,
and handed to the function as its environment."""

from __future__ import annotations

import json

import pytest

from infra.function_environment import function_environment
from infra.settings import StackSettings, StackSettingsError
from sqs_consumer.settings import ConsumerSettings


def settings(**values: object) -> StackSettings:
    return StackSettings.for_stage("test", {"test": values})


def test_breakers_are_on_with_idempotency_and_off_without_it_by_default():
    assert settings().breakers is True
    assert settings(idempotency=False).breakers is False
    assert settings(breaker_enabled=False).breakers is False


@pytest.mark.parametrize(("values", "message"), [
    pytest.param({"idempotency": False, "breaker_enabled": True},
                 r"breaker_enabled needs idempotency: .* or breaker_enabled false", id="no-table"),
    pytest.param({"breaker_cool_down_seconds": 120},
                 r"breaker_cool_down_seconds \(120\) must be <= breaker_cool_down_cap_seconds \(30\)", id="cap"),
    pytest.param({"breaker_alarm_minutes": 2, "breaker_cool_down_cap_seconds": 300},
                 r"breaker_alarm_minutes \(2\) must be longer than breaker_cool_down_cap_seconds \(300 s\)",
                 id="alarm-before-a-probe"),
    pytest.param({"idempotency": False, "dependency_rate_limits": {"orders-api": {"rate_per_second": 20}}},
                 r"dependency_rate_limits needs idempotency", id="rate-without-table"),
    pytest.param({"dependency_rate_limits": {"orders-api": {"rate_per_second": 0}}},
                 r"rate_per_second", id="zero-rate"),
    pytest.param({"dependency_rate_limits": {"Orders API": {"rate_per_second": 5}}},
                 r"dependency_rate_limits", id="bad-name"),
    pytest.param({"breaker_threshold": 0}, r"breaker_threshold", id="threshold"),
])  # fmt: skip
def test_a_bad_dependency_setting_is_refused_with_what_to_change(values, message):
    with pytest.raises(StackSettingsError, match=message):
        settings(**values)


def test_the_function_reads_back_the_rate_limits_and_breakers_the_stage_sets():
    # GIVEN a stage with a rate limit and its own breaker settings
    stage = settings(dependency_rate_limits={"orders-api": {"rate_per_second": 20, "burst": 40}},
                     breaker_threshold=8, breaker_cool_down_seconds=30, breaker_cool_down_cap_seconds=240,
                     breaker_alarm_minutes=15)  # fmt: skip

    # WHEN its function's environment is read by the function's own settings
    class Breakers:
        group_name = "probes"
        scheduler_role_name = "consumer-probe"

    environment = function_environment(stage, "https://sqs.us-east-1.amazonaws.com/1/dlq", "table", None,
                                       Breakers())  # fmt: skip
    read = ConsumerSettings.from_env(environment)

    # THEN it is what the stage set
    assert read.breakers_enabled and read.breaker_threshold == 8
    assert (read.breaker_cool_down_seconds, read.breaker_cool_down_cap_seconds) == (30, 240)
    assert read.dependency_rate_limits["orders-api"].rate_per_second == 20
    assert read.dependency_rate_limits["orders-api"].burst == 40
    assert json.loads(environment["DEPENDENCY_RATE_LIMITS"]) == {"orders-api": {"burst": 40, "rate_per_second": 20.0}}
