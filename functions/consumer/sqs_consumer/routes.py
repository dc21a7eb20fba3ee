"""The registrations: one line per event type.

Adding an event type: a model in ``models/``, a handler in ``handlers/``, one
``Route`` here, and one sample event in ``events/`` (a test checks all four).
"""

from __future__ import annotations

from sqs_consumer.handlers.document_processed import handle_document_processed
from sqs_consumer.handlers.hello import handle_hello
from sqs_consumer.handlers.order_placed import ORDERS_API, handle_order_placed
from sqs_consumer.models import DocumentProcessedEvent, HelloEvent, OrderPlacedEvent
from sqs_consumer.registry import EventRegistry, Route

REGISTRY = EventRegistry(
    [
        Route(HelloEvent, handle_hello),
        # Service levels: alarms per event type (docs/operations.md#service-levels-per-event-type).
        Route(DocumentProcessedEvent, handle_document_processed, slo_p99_ms=500, slo_max_age_s=300),
        Route(OrderPlacedEvent, handle_order_placed, dependencies=[ORDERS_API]),
    ]
)
