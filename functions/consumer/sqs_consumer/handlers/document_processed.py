"""Handler for ``document.processed``: the seed's example of a new event type."""

from __future__ import annotations

import logging

from sqs_consumer.models.document_processed import DocumentProcessedEvent
from sqs_consumer.observability import logger
from sqs_consumer.registry import RecordInfo


def handle_document_processed(event: DocumentProcessedEvent, record: RecordInfo) -> None:
    # Business logic goes here (store, notify...). Raise NonRetryableError when
    # retrying cannot help, any other exception to have the message retried.
    if logger.log_level <= logging.DEBUG:
        logger.debug("Document processed", document_id=event.payload.document_id, event_id=event.event_id)
