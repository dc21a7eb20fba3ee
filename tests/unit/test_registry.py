"""The registry: routing, the four steps of adding a type, and parsing."""

from __future__ import annotations

import importlib
import json
import pkgutil
from pathlib import Path
from types import ModuleType
from typing import Literal

import pytest

from sqs_consumer.errors import PoisonMessageError
from sqs_consumer.models import BaseEvent, HelloEvent
from sqs_consumer.models.record import RecordInfo
from sqs_consumer.registry import UNREGISTERED_TYPE, EventRegistry, Route, event_type_of
from sqs_consumer.routes import REGISTRY
from sqs_consumer.testing import events as sqs

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"


def _noop(event: BaseEvent, record: RecordInfo) -> None:
    return None


@pytest.mark.parametrize("event_type", sorted(REGISTRY.routes), ids=str)
def test_registered_type_has_sample_event_that_parses_to_its_model(event_type: str):
    # GIVEN a registered type, its sample event must exist as events/<event_type>.json
    path = EVENTS_DIR / f"{event_type}.json"
    assert path.is_file(), (
        f"add a sample event for {event_type!r}: make event TYPE={event_type} PAYLOAD='{{...}}' (see README)"
    )
    route = REGISTRY.routes[event_type]

    # THEN every record of it parses into the registered model
    for record in json.loads(path.read_text())["Records"]:
        parsed = REGISTRY.parse(record["body"])
        assert type(parsed) is route.model
        assert parsed.event_type == event_type


def _modules(package: str) -> list[ModuleType]:
    root = importlib.import_module(package)
    return [importlib.import_module(f"{package}.{info.name}") for info in pkgutil.iter_modules(root.__path__)]


def test_every_event_model_is_registered():
    # A model written (step 1) but not registered (step 3) would never receive an event.
    registered = {route.model for route in REGISTRY.routes.values()}
    models = {
        value
        for module in _modules("sqs_consumer.models")
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, BaseEvent) and value is not BaseEvent
        and value.__module__ == module.__name__
    }  # fmt: skip
    missing = sorted(model.__name__ for model in models - registered)
    assert not missing, f"register these models in sqs_consumer/routes.py: {missing}"


def test_every_handler_is_registered():
    # A handler written (step 2) but not registered (step 3) would never run.
    registered = {route.handler for route in REGISTRY.routes.values()}
    handlers = {
        value
        for module in _modules("sqs_consumer.handlers")
        for name, value in vars(module).items()
        if name.startswith("handle_") and callable(value) and getattr(value, "__module__", None) == module.__name__
    }
    missing = sorted(handler.__name__ for handler in handlers - registered)
    assert not missing, f"register these handlers in sqs_consumer/routes.py (or rename them without handle_): {missing}"


def test_the_reserved_unknown_type_can_never_be_registered():
    class Reserved(BaseEvent):
        event_type: Literal["example.unregistered"]

    assert UNREGISTERED_TYPE not in REGISTRY
    with pytest.raises(ValueError, match="reserved"):
        EventRegistry([Route(Reserved, _noop)])


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
