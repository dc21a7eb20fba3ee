"""Fixtures shared by the integration tests."""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import boto3
import pytest


@pytest.fixture
def extended_session() -> Iterator[type]:
    """AWS's Python extended client (`amazon-sqs-extended-client`), as its session class.

    Importing it patches ``boto3.Session`` for the whole process; the patch is undone at once and the
    client used by name, so no other test, before or after, sees an extended client it did not ask for.
    """
    saved = boto3.Session, boto3.DEFAULT_SESSION
    try:
        module = importlib.import_module("sqs_extended_client.client")
    finally:
        setattr(boto3, "Session", saved[0])  # noqa: B010 (the patch being undone assigns a type)
        setattr(boto3.session, "Session", saved[0])  # noqa: B010
        boto3.DEFAULT_SESSION = saved[1]
    yield module.SQSExtendedClientSession


@pytest.fixture
def handler_module() -> Iterator[object]:
    """A fresh handler (its consumer and settings are cached per process)."""
    from sqs_consumer import handler
    from sqs_consumer.settings import get_settings

    get_settings.cache_clear()
    handler._consumer.cache_clear()
    yield handler
    get_settings.cache_clear()
    handler._consumer.cache_clear()
