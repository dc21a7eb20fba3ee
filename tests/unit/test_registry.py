"""The registry: routing, the four steps of adding a type, and parsing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pytest

from sqs_consumer.errors import PoisonMessageError
from sqs_consumer.models import BaseEvent, HelloEvent
from sqs_consumer.registry import EventRegistry, RecordInfo, Route, event_type_of
from sqs_consumer.routes import REGISTRY
from tests.support import sqs_events as sqs

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"


def _noop(event: BaseEvent, record: RecordInfo) -> None:
    return None


@pytest.mark.parametrize("event_type", sorted(REGISTRY.routes), ids=str)
def test_registered_type_has_sample_event_that_parses_to_its_model(event_type: str):
    # GIVEN a registered type, its sample event must exist as events/<event_type>.json
    path = EVENTS_DIR / f"{event_type}.json"
    assert path.is_file(), f"add a sample event for {event_type!r} at {path}"
    route = REGISTRY.routes[event_type]

    # THEN every record of it parses into the registered model
    for record in json.loads(path.read_text())["Records"]:
        parsed = REGISTRY.parse(record["body"])
        assert type(parsed) is route.model
        assert parsed.event_type == event_type


@pytest.mark.parametrize("event_type", sorted(REGISTRY.routes), ids=str)
def test_registered_type_has_a_typed_model_and_a_callable_handler(event_type: str):
    route = REGISTRY.routes[event_type]
    assert issubclass(route.model, BaseEvent) and route.model is not BaseEvent
    assert route.model.model_fields["payload"].annotation is not None
    assert callable(route.handler)


def test_registry_rejects_duplicate_registration():
    with pytest.raises(ValueError, match="registered twice"):
        EventRegistry([Route(HelloEvent, _noop), Route(HelloEvent, _noop)])


def test_event_type_of_requires_a_single_literal():
    class Loose(BaseEvent):
        event_type: str

    class Pair(BaseEvent):
        event_type: Literal["a", "b"]

    for model in (Loose, Pair):
        with pytest.raises(TypeError, match="single Literal"):
            event_type_of(model)


def test_registry_parse_routes_to_the_model_of_the_event_type():
    event = REGISTRY.parse(sqs.body("document.processed", {"document_id": "d-1", "pages": 3}))
    assert event.event_type == "document.processed"
    assert REGISTRY.route_for(event).model.__name__ == "DocumentProcessedEvent"


def test_registry_parse_reports_every_invalid_field():
    with pytest.raises(PoisonMessageError) as caught:
        REGISTRY.parse(json.dumps({"event_id": "", "event_type": "hello", "payload": {}}))
    assert caught.value.kind == "invalid_envelope"
    assert "event_id" in caught.value.reason and "payload.name" in caught.value.reason


def test_single_route_registry_classifies_payload_errors():
    registry = EventRegistry([Route(HelloEvent, _noop)])
    with pytest.raises(PoisonMessageError) as caught:
        registry.parse(sqs.body("hello", {"nom": "x"}))
    assert caught.value.kind == "invalid_payload"
