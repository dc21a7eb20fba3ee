"""The emulated event source mapping settles batches as Lambda does."""

from __future__ import annotations

from typing import Any

import pytest

from local.emulator import Invocation
from local.event_source import settle, to_lambda_record
from tests.unit.test_sample_events import RECORD_KEYS

IDS = ["a", "b", "c"]


def invocation(payload: Any, error: bool = False) -> Invocation:
    return Invocation(payload, function_error=error, duration_seconds=0.01)


@pytest.mark.parametrize(
    ("payload", "failed", "reason"),
    [
        (None, set(), "ok"),
        ({}, set(), "ok"),
        ({"batchItemFailures": []}, set(), "ok"),
        ({"batchItemFailures": None}, set(), "ok"),
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, {"b"}, "partial"),
        ({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, set(IDS), "invalid_response"),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, set(IDS), "invalid_response"),
        ({"batchItemFailures": [{"itemIdentifier": None}]}, set(IDS), "invalid_response"),
        ({"batchItemFailures": [{"id": "a"}]}, set(IDS), "invalid_response"),
        ({"batchItemFailures": "a"}, set(IDS), "invalid_response"),
        ("not an object", set(IDS), "invalid_response"),
    ],
)
def test_settle_follows_the_partial_batch_response_contract(payload, failed, reason):
    assert settle(IDS, invocation(payload)) == (failed, reason)


def test_settle_function_error_keeps_every_message():
    assert settle(IDS, invocation({"errorType": "Timeout", "errorMessage": "x"}, error=True)) == (
        set(IDS),
        "function_error",
    )


def test_to_lambda_record_has_the_lambda_shape():
    message = {
        "MessageId": "m-1",
        "ReceiptHandle": "rh",
        "MD5OfBody": "abc",
        "Body": "{}",
        "Attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1", "SqsManagedSseEnabled": "true"},
        "MessageAttributes": {
            "event_type": {"DataType": "String", "StringValue": "hello"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x01\x02"},
        },
    }
    record = to_lambda_record(message, "arn:aws:sqs:us-east-1:000000000000:q")  # type: ignore[arg-type]
    assert set(record) == RECORD_KEYS
    assert record["attributes"] == {"ApproximateReceiveCount": "2", "SentTimestamp": "1"}
    assert record["messageAttributes"]["event_type"] == {
        "stringValue": "hello", "stringListValues": [], "binaryListValues": [], "dataType": "String",
    }  # fmt: skip
    assert record["messageAttributes"]["blob"]["binaryValue"] == "AQI="
