"""Event models: one module per event type, all built on ``BaseEvent``."""

from sqs_consumer.models.base import BaseEvent
from sqs_consumer.models.document_processed import DocumentProcessedEvent, DocumentProcessedPayload
from sqs_consumer.models.hello import HelloEvent, HelloPayload

__all__ = [
    "BaseEvent",
    "DocumentProcessedEvent",
    "DocumentProcessedPayload",
    "HelloEvent",
    "HelloPayload",
]
