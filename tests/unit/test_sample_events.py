"""Every sample event in events/ is realistic and yields its expected response."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from local import sample_payloads
from sqs_consumer.pipeline import BatchConsumer
from sqs_consumer.routes import REGISTRY
from tests.support.fakes import FakeContext, FakeQuarantine

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"
SAMPLE_EVENTS = sorted(p for p in EVENTS_DIR.glob("*.json") if not p.name.endswith(".expected.json"))
RECORD_KEYS = {
    "messageId",
    "receiptHandle",
    "body",
    "attributes",
    "messageAttributes",
    "md5OfBody",
    "eventSource",
    "eventSourceARN",
    "awsRegion",
}


def expected_for(path: Path) -> dict:
    return json.loads(path.with_name(path.name.removesuffix(".json") + ".expected.json").read_text())


def test_sample_events_exist():
    assert len(SAMPLE_EVENTS) >= 5


@pytest.mark.parametrize("path", SAMPLE_EVENTS, ids=lambda p: p.name)
def test_sample_event_has_lambda_shape(path: Path):
    records = json.loads(path.read_text())["Records"]
    assert records
    for record in records:
        assert set(record) == RECORD_KEYS
        assert record["eventSource"] == "aws:sqs"
        assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
        assert int(record["attributes"]["ApproximateReceiveCount"]) >= 1
        assert int(record["attributes"]["SentTimestamp"]) > 0
        fifo = record["eventSourceARN"].endswith(".fifo")
        assert ("MessageGroupId" in record["attributes"]) == fifo


@pytest.mark.parametrize("path", SAMPLE_EVENTS, ids=lambda p: p.name)
def test_sample_event_gives_expected_response(path: Path):
    # GIVEN a sample event and its expected outcome
    event = json.loads(path.read_text())
    expected = expected_for(path)
    quarantine = FakeQuarantine()

    # WHEN the consumer handles it (an offloaded sample's payload in moto's S3, where its pointer says)
    with sample_payloads.in_process(EVENTS_DIR) as payloads:
        response = BatchConsumer(REGISTRY, quarantine, payloads=payloads).handle(event, FakeContext())

    # THEN exactly the expected records fail and exactly the expected ones are quarantined
    assert response == {"batchItemFailures": expected["batchItemFailures"]}
    assert sorted(quarantine.message_ids) == sorted(expected["quarantined"])
