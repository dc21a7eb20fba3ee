"""Test-only helpers beside the public kit (sqs_consumer.testing)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from sqs_consumer.models.record import RecordInfo
from sqs_consumer.registry import EventRegistry, Handler, Route
from sqs_consumer.routes import REGISTRY
from sqs_consumer.testing.fakes import FakeClock


def slow_registry(clock: FakeClock, seconds: float) -> EventRegistry:
    """The function's routes, each handler taking ``seconds`` of ``clock`` before it runs."""

    def slowed(handler: Handler[Any]) -> Handler[Any]:
        def run(event: Any, info: RecordInfo) -> Awaitable[None] | None:
            clock.advance(seconds)
            return handler(event, info)

        return run

    return EventRegistry(
        Route(route.model, slowed(route.handler), dependencies=route.dependencies) for route in REGISTRY.routes.values()
    )
