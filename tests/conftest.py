from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from sqs_consumer.observability import logger
from sqs_consumer.pipeline import BatchConsumer
from sqs_consumer.routes import REGISTRY
from sqs_consumer.testing.fakes import FakeContext, InMemoryDLQ


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and a region, so boto3 under moto never looks for real ones."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


@pytest.fixture
def quarantine() -> InMemoryDLQ:
    return InMemoryDLQ()


@pytest.fixture
def context() -> FakeContext:
    return FakeContext()


@pytest.fixture
def consumer(quarantine: InMemoryDLQ) -> BatchConsumer:
    return BatchConsumer(REGISTRY, quarantine, time_reserve_ms=1_000)


def failed_ids(response: Mapping[str, Any]) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


class LogCapture:
    """The consumer's structured log lines, parsed."""

    def __init__(self, stream: io.StringIO) -> None:
        self._stream = stream

    @property
    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self._stream.getvalue().splitlines() if line.strip()]

    def clear(self) -> None:
        self._stream.seek(0)
        self._stream.truncate()


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    """The consumer's lines at INFO and above, formatted as Powertools writes them, whatever an earlier
    test in the same process did to the logger's level or its handler."""
    stream = io.StringIO()
    capture = logging.StreamHandler(stream)
    capture.setFormatter(logger.registered_formatter)
    level = logger._logger.level
    logger._logger.addHandler(capture)
    if level == logging.NOTSET or level > logging.INFO:
        logger._logger.setLevel(logging.INFO)
    try:
        yield LogCapture(stream)
    finally:
        logger._logger.removeHandler(capture)
        logger._logger.setLevel(level)
