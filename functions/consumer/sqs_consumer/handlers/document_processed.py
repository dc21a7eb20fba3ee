"""Handler for ``document.processed``: the seed's example of a new event type."""

from __future__ import annotations

import logging

from sqs_consumer import secrets
from sqs_consumer.models.document_processed import DocumentProcessedEvent
from sqs_consumer.models.record import RecordInfo
from sqs_consumer.observability import logger

# The secret this handler reads when its stage names one: the key of the downstream documents API.
API_KEY_SECRET = "document_api_key"  # noqa: S105  # the secret's handle, not its value


def handle_document_processed(event: DocumentProcessedEvent, record: RecordInfo) -> None:
    # Business logic goes here (store, notify...). Raise NonRetryableError when
    # retrying cannot help, any other exception to have the message retried.
    if secrets.configured(API_KEY_SECRET):
        # Read through the Parameters utility's cache: Secrets Manager is asked once per max age.
        _notify_downstream(event, secrets.get_secret(API_KEY_SECRET))
    if logger.log_level <= logging.DEBUG:
        logger.debug("Document processed", document_id=event.payload.document_id, event_id=event.event_id,
                     trace_id=record.trace_id)  # fmt: skip


def _notify_downstream(event: DocumentProcessedEvent, api_key: str) -> None:
    """Where a call to the documents API, authenticated with ``api_key``, would go."""
    if not api_key:
        raise secrets.SecretNotConfiguredError(f"secret {API_KEY_SECRET!r} is empty")
