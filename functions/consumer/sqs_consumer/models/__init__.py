"""Event models: one module per event type, all built on ``BaseEvent``.

Beside them, the shapes around an event: ``record`` (what a handler is told about its message) and
``envelopes`` (SNS, EventBridge), ``trace`` (X-Ray trace headers), none imported from here.
"""

from sqs_consumer.models.base import BaseEvent
from sqs_consumer.models.document_processed import DocumentProcessedEvent, DocumentProcessedPayload
from sqs_consumer.models.hello import HelloEvent, HelloPayload
from sqs_consumer.models.order_placed import OrderLine, OrderPlacedEvent, OrderPlacedPayload

__all__ = [
    "BaseEvent",
    "DocumentProcessedEvent",
    "DocumentProcessedPayload",
    "HelloEvent",
    "HelloPayload",
    "OrderLine",
    "OrderPlacedEvent",
    "OrderPlacedPayload",
]
