"""The publisher sends a chosen version of an event type, and each event's tenant as its message group."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest

from publisher.__main__ import main
from publisher.client import EventPublisher, tenant_group
from publisher.schema import release
from sqs_consumer.registry import EventRegistry, Route
from sqs_consumer.routes import REGISTRY
from tests.unit.test_event_versions import GreetingV1, GreetingV2, Seen, v1_to_v2
from tests.unit.test_publisher import FakeSqs

V2 = EventRegistry([Route(GreetingV2, Seen(), upcasters={1: v1_to_v2})])


@pytest.fixture
def schema_dir(tmp_path: Path) -> Path:
    """Version 1 of "greeting" released, then the type moved to version 2."""
    release(EventRegistry([Route(GreetingV1, Seen())]), tmp_path)
    return tmp_path


def publisher(client: FakeSqs, version: int | None, schema_dir: Path, url: str = "https://sqs/q") -> EventPublisher:
    sender = EventPublisher(url, cast(Any, client), registry=V2, sleep=lambda _: None, event_version=version)
    sender._versions._schema_dir = schema_dir
    return sender


def sent(client: FakeSqs) -> list[dict[str, Any]]:
    return [json.loads(entry["MessageBody"]) for call in client.calls for entry in call]


def test_the_current_version_is_stamped_by_default(schema_dir: Path):
    client = FakeSqs()
    event = {"event_id": "e1", "event_type": "greeting", "payload": {"first_name": "Ada", "last_name": "L"}}

    results = publisher(client, None, schema_dir).publish([event])

    assert results[0].ok
    assert sent(client)[0]["event_version"] == 2


def test_an_older_version_is_validated_as_released_and_stamped(schema_dir: Path):
    client = FakeSqs()
    good = {"event_id": "e1", "event_type": "greeting", "payload": {"name": "Ada Lovelace"}}
    v2_shape = {"event_id": "e2", "event_type": "greeting", "payload": {"first_name": "Ada", "last_name": "L"}}

    results = publisher(client, 1, schema_dir).publish([good, v2_shape])

    assert results[0].ok
    assert sent(client) == [{**good, "event_version": 1}]
    assert not results[1].ok
    assert "not valid as released version 1: payload: Additional properties are not allowed" in (results[1].error or "")


def test_a_version_the_models_do_not_know_or_a_body_that_declares_another_is_refused(schema_dir: Path):
    client = FakeSqs()
    event = {"event_id": "e1", "event_type": "greeting", "payload": {"name": "Ada"}}

    newer = publisher(client, 3, schema_dir).publish([event])
    mismatched = publisher(client, 1, schema_dir).publish([{**event, "event_version": 2}])

    assert "version 3 of 'greeting' is unknown: the models know 2" in (newer[0].error or "")
    assert "event_version 2: not the version sent, 1" in (mismatched[0].error or "")
    assert client.calls == []


def test_a_version_never_released_is_refused(tmp_path: Path):
    client = FakeSqs()
    event = {"event_id": "e1", "event_type": "greeting", "payload": {"name": "Ada"}}

    results = publisher(client, 1, tmp_path).publish([event])

    assert "version 1 of 'greeting' was never released" in (results[0].error or "")


def test_tenant_field_sets_message_group_id_on_a_standard_queue_without_splitting_batches():
    # GIVEN 20 events of 4 tenants, interleaved, to a standard queue
    client = FakeSqs()
    events = [{"event_id": f"e{i}", "event_type": "document.processed",
               "payload": {"document_id": "d", "tenant_id": f"t{i % 4}"}} for i in range(20)]  # fmt: skip
    sender = EventPublisher("https://sqs/q", cast(Any, client), sleep=lambda _: None)

    # WHEN they are published with the tenant field
    results = sender.publish(events, group_id=tenant_group("tenant_id"))

    # THEN each message carries its tenant, requests stay full, and no deduplication id is sent
    assert all(result.ok for result in results)
    entries = [entry for call in client.calls for entry in call]
    assert [entry["MessageGroupId"] for entry in entries] == [f"t{i % 4}" for i in range(20)]
    assert [len(call) for call in client.calls] == [10, 10]
    assert not any("MessageDeduplicationId" in entry for entry in entries)


def test_tenant_field_is_a_payload_name_or_a_path_from_the_event():
    event = REGISTRY.parse(json.dumps({"event_id": "e1", "event_type": "hello", "payload": {"name": "acme"}}))
    assert tenant_group("name")(event) == "acme"
    assert tenant_group("payload.name")(event) == "acme"
    assert tenant_group("event_id")(event) == "e1"


def test_cli_event_version_must_be_a_positive_whole_number(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exited:
        main(["--queue-url", "https://sqs/q", "--event-version", "0", "{}"])
    assert exited.value.code == 2
    assert "an event version is 1 or more, not 0" in capsys.readouterr().err


def test_cli_tenant_field_excludes_group_field(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exited:
        main(["--queue-url", "https://sqs/q", "--tenant-field", "t", "--group-field", "payload.t", "{}"])
    assert exited.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
