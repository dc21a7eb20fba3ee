"""The public test kit (sqs_consumer.testing): a batch through the real consumer, each record's disposition."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sqs_consumer.models.record import RecordInfo
from sqs_consumer.registry import EventRegistry, Route
from sqs_consumer.routes import REGISTRY
from sqs_consumer.testing import InMemoryIdempotency, InMemoryS3, run_batch

ROOT = Path(__file__).resolve().parents[2]


def hello(event_id: str, **payload: object) -> dict[str, object]:
    return {"event_id": event_id, "event_type": "hello", "payload": {"name": "x", **payload}}


def test_run_batch_gives_each_record_its_disposition():
    # GIVEN one event of each fate: handled, poison, failing, not JSON
    bad = {"event_id": "evt_bad", "event_type": "hello", "payload": {}}

    # WHEN they run as one batch
    result = run_batch(hello("evt_ok"), bad, hello("evt_fail", simulate="fail"), "not json")

    # THEN each is told apart as the deployed function would dispose of it
    assert result.succeeded == ["evt_ok"]
    assert result.listed == ["evt_fail"]
    assert result.quarantined["evt_bad"].kind == "invalid_payload"
    assert result.quarantined["msg-4"].kind == "malformed_json"  # no event_id: keyed by its message id
    assert result.response == {"batchItemFailures": [{"itemIdentifier": "msg-3"}]}


def test_the_last_receive_quarantines_what_would_be_retried():
    result = run_batch(hello("evt_fail", simulate="fail"), receive_count=4, max_receive_count=4)

    assert result.quarantined["evt_fail"].kind == "retries_exhausted"
    assert "simulated failure" in (result.quarantined["evt_fail"].reason or "")


@pytest.mark.parametrize("shape", ["plain", "sns", "eventbridge", "offloaded"])
def test_every_upstream_shape_reaches_the_handler(shape):
    s3 = InMemoryS3()

    result = run_batch(hello("evt_1"), shape=shape, s3=s3)

    assert result.succeeded == ["evt_1"]
    assert result["evt_1"].handler_calls == 1
    assert len(s3.reads) == (1 if shape == "offloaded" else 0)


def test_an_offloaded_payload_that_is_gone_is_quarantined_as_missing():
    class Expired(InMemoryS3):
        def put(self, bucket: str, key: str, data: bytes | str) -> None:  # the bucket's lifecycle got there first
            pass

    result = run_batch(hello("evt_1"), shape="offloaded", s3=Expired())

    assert result.quarantined["evt_1"].kind == "payload_missing"


def test_a_redelivery_with_the_same_store_is_a_duplicate_and_runs_nothing():
    store = InMemoryIdempotency()
    first = run_batch(hello("evt_1"), idempotency=store)

    again = run_batch(hello("evt_1"), idempotency=store)

    assert first.succeeded == ["evt_1"]
    assert again.duplicates == ["evt_1"] and again["evt_1"].handler_calls == 0


def test_a_fifo_group_stops_behind_its_failed_record():
    result = run_batch(hello("evt_1", simulate="fail"), hello("evt_2"), group_id="tenant-1")

    assert result.listed == ["evt_1", "evt_2"]
    assert result["evt_2"].handler_calls == 0


def test_a_teams_own_registry_runs_its_own_handler():
    seen: list[tuple[str, int]] = []
    model = REGISTRY.routes["hello"].model

    def handler(event: object, record: RecordInfo) -> None:
        seen.append((record.message_id, record.receive_count))

    result = run_batch(hello("evt_1"), registry=EventRegistry([Route(model, handler)]), receive_count=2)

    assert result.succeeded == ["evt_1"]
    assert seen == [("msg-1", 2)]


def test_the_function_never_imports_the_kit():
    code = ("import sys, sqs_consumer.handler, sqs_consumer.routes; "
            "print(any(m.startswith('sqs_consumer.testing') for m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT / "functions" / "consumer", capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    assert out.strip() == "False"
