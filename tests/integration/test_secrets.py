"""Secrets for handlers, read through the Powertools Parameters utility, against moto's Secrets Manager."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from sqs_consumer import secrets
from sqs_consumer.handler import build_consumer
from sqs_consumer.handlers.document_processed import API_KEY_SECRET
from sqs_consumer.pipeline import BatchConsumer
from sqs_consumer.routes import REGISTRY
from sqs_consumer.settings import ConsumerSettings, get_settings
from sqs_consumer.testing import events as sqs
from sqs_consumer.testing.fakes import FakeContext, InMemoryDLQ
from tests.conftest import failed_ids

SECRET_NAME = "prod/documents/api-key"


@pytest.fixture
def secrets_manager(aws_credentials, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """moto's Secrets Manager holding the documents API key, the stage naming it; the calls made."""
    monkeypatch.setenv(ConsumerSettings.env_name("dlq_url"), "https://sqs.us-east-1.amazonaws.com/123456789012/dlq")
    monkeypatch.setenv(ConsumerSettings.env_name("secret_names"), json.dumps({API_KEY_SECRET: SECRET_NAME}))
    monkeypatch.setenv(ConsumerSettings.env_name("secrets_max_age_seconds"), "300")
    get_settings.cache_clear()
    secrets._provider.cache_clear()
    # What the entry point does with the stage's settings when it builds the consumer.
    build_consumer(get_settings())
    calls: list[str] = []
    with mock_aws():
        boto3.client("secretsmanager", region_name="us-east-1").create_secret(Name=SECRET_NAME, SecretString="k-1")
        # Every call the Parameters utility's own client makes, counted on its way out.
        secrets._provider().client.meta.events.register(
            "before-call.secrets-manager.*", lambda model, **kwargs: calls.append(model.name)
        )
        yield calls
    get_settings.cache_clear()
    secrets._provider.cache_clear()
    secrets.configure({}, 300)


def documents(count: int) -> dict:
    return sqs.event(*(sqs.record(sqs.body("document.processed", {"document_id": f"d-{i}"})) for i in range(count)))


def test_a_handler_reads_its_secret_once_per_max_age_through_the_parameters_utility(secrets_manager):
    consumer = BatchConsumer(REGISTRY, InMemoryDLQ())

    # WHEN a first batch arrives, the handler reads the secret: one call to Secrets Manager
    first = consumer.handle(documents(3), FakeContext())
    assert secrets_manager == ["GetSecretValue"]

    # THEN later records and batches are served from the utility's cache, within the max age
    second = consumer.handle(documents(3), FakeContext())
    assert failed_ids(first) == failed_ids(second) == []
    assert secrets.get_secret(API_KEY_SECRET) == "k-1"
    assert secrets_manager == ["GetSecretValue"]


def test_an_unconfigured_secret_is_a_clear_non_retryable_error(secrets_manager):
    with pytest.raises(
        secrets.SecretNotConfiguredError, match=r"no secret 'billing_key' is configured.*document_api_key"
    ):
        secrets.get_secret("billing_key")
    assert secrets_manager == []


def test_importing_the_handler_reads_no_secret(secrets_manager):
    import importlib

    import sqs_consumer.handler

    importlib.reload(sqs_consumer.handler)
    assert secrets_manager == []
