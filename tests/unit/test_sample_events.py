"""Every sample event in events/ is realistic and yields its expected response."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from sqs_consumer.envelopes import pointer_in
from sqs_consumer.payload_store import S3Payloads
from sqs_consumer.pipeline import BatchConsumer
from sqs_consumer.routes import REGISTRY
from sqs_consumer.settings import get_orders_api_settings
from sqs_consumer.testing.fakes import FakeContext, InMemoryDLQ
from tests.support import botocore_clients
from tests.support.orders_api import StandInOrdersApi, orders_api

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


def stubbed_s3(event: dict[str, Any]) -> tuple[S3Payloads, Stubber]:
    """S3 answering each pointer of the event with its sample payload (events/payloads/KEY.json), as
    `make event SHAPE=offloaded` wrote it; botocore's Stubber, so this runs on the function's own packages."""
    client: Any = botocore_clients.client(
        "s3", region_name="us-east-1", aws_access_key_id="sample", aws_secret_access_key="sample"
    )
    stubber = Stubber(client)
    for record in event["Records"]:
        found = pointer_in(record)
        if found is None:
            continue
        pointer, _ = found
        data = (EVENTS_DIR / "payloads" / f"{pointer.key}.json").read_bytes()
        stubber.add_response("get_object", {"Body": StreamingBody(io.BytesIO(data), len(data)),
                             "ContentLength": len(data)}, {"Bucket": pointer.bucket, "Key": pointer.key})  # fmt: skip
    stubber.activate()
    return S3Payloads(32 * 1_048_576, client_factory=lambda _: client), stubber


@pytest.fixture(scope="module")
def orders_server() -> Iterator[StandInOrdersApi]:
    """The orders API the order.placed samples are POSTed to, up for the module (its stop waits out a poll)."""
    with orders_api() as api:
        yield api


@pytest.fixture(autouse=True)
def orders(orders_server: StandInOrdersApi, monkeypatch: pytest.MonkeyPatch) -> Iterator[StandInOrdersApi]:
    """The settings read again for the stand-in, each test."""
    monkeypatch.setenv("ORDERS_API_URL", orders_server.url)
    get_orders_api_settings.cache_clear()
    yield orders_server
    get_orders_api_settings.cache_clear()


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
    quarantine = InMemoryDLQ()

    # WHEN the consumer handles it (an offloaded sample's payload in S3, where its pointer says)
    payloads, s3 = stubbed_s3(event)
    response = BatchConsumer(REGISTRY, quarantine, payloads=payloads).handle(event, FakeContext())

    # THEN exactly the expected records fail and exactly the expected ones are quarantined
    assert response == {"batchItemFailures": expected["batchItemFailures"]}
    assert sorted(quarantine.message_ids) == sorted(expected["quarantined"])
    s3.assert_no_pending_responses()  # every offloaded payload was fetched
