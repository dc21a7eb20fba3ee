from __future__ import annotations

import pytest

from sqs_consumer.processing import BatchConsumer
from sqs_consumer.routes import REGISTRY
from tests.support.fakes import FakeContext, FakeQuarantine


@pytest.fixture
def quarantine() -> FakeQuarantine:
    return FakeQuarantine()


@pytest.fixture
def context() -> FakeContext:
    return FakeContext()


@pytest.fixture
def consumer(quarantine: FakeQuarantine) -> BatchConsumer:
    return BatchConsumer(REGISTRY, quarantine, time_reserve_ms=1_000)


def failed_ids(response: dict) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]
