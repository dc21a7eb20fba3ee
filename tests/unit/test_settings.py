from __future__ import annotations

import pytest

from sqs_consumer.errors import SettingsError
from sqs_consumer.settings import ConsumerSettings

DLQ = "https://sqs.us-east-1.amazonaws.com/123456789012/orders-dlq"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for field in ConsumerSettings.model_fields:
        monkeypatch.delenv(ConsumerSettings.env_name(field), raising=False)


def test_settings_read_from_environment(monkeypatch):
    monkeypatch.setenv("DLQ_URL", DLQ)
    monkeypatch.setenv("TIME_RESERVE_MS", "7000")
    monkeypatch.setenv("MAX_CONCURRENT_RECORDS", "3")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "orders")
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")

    settings = ConsumerSettings.from_env()

    assert (settings.dlq_url, settings.time_reserve_ms, settings.max_concurrent_records) == (DLQ, 7000, 3)
    assert (settings.service_name, settings.log_level) == ("orders", "DEBUG")


def test_settings_defaults_mirror_the_seed(monkeypatch):
    monkeypatch.setenv("DLQ_URL", DLQ)
    settings = ConsumerSettings.from_env()
    assert settings.time_reserve_ms == 5_000
    assert settings.max_concurrent_records == 10
    assert settings.log_level == "INFO"


def test_settings_missing_dlq_url_names_the_variable():
    with pytest.raises(SettingsError, match=r"DLQ_URL: Field required"):
        ConsumerSettings.from_env()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TIME_RESERVE_MS", "-1"),
        ("MAX_CONCURRENT_RECORDS", "0"),
        ("POWERTOOLS_LOG_LEVEL", "LOUD"),
        ("DLQ_URL", "not a url"),
    ],
)
def test_settings_invalid_value_names_the_variable(monkeypatch, name, value):
    monkeypatch.setenv("DLQ_URL", DLQ)
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        ConsumerSettings.from_env()


def test_settings_env_name_is_the_first_alias():
    assert ConsumerSettings.env_name("dlq_url") == "DLQ_URL"
    assert ConsumerSettings.env_name("service_name") == "POWERTOOLS_SERVICE_NAME"


@pytest.mark.parametrize(
    ("base", "cap"),
    [("10", "5"), ("1", "0"), ("1", "43200")],
    ids=["cap-below-base", "zero-cap", "beyond-12-hours"],
)
def test_settings_refuse_a_backoff_that_would_loop_hot_or_that_sqs_refuses(monkeypatch, base, cap):
    monkeypatch.setenv("DLQ_URL", DLQ)
    monkeypatch.setenv("RETRY_BACKOFF_BASE_SECONDS", base)
    monkeypatch.setenv("RETRY_BACKOFF_CAP_SECONDS", cap)
    with pytest.raises(SettingsError, match="RETRY_BACKOFF"):
        ConsumerSettings.from_env()
