"""``document.processed``: a document finished processing upstream."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sqs_consumer.models.base import BaseEvent


class DocumentProcessedPayload(BaseModel):
    # Producers may add fields; they are kept for handlers that want them.
    model_config = ConfigDict(frozen=True, extra="allow")

    document_id: str = Field(min_length=1)


class DocumentProcessedEvent(BaseEvent):
    event_type: Literal["document.processed"]
    payload: DocumentProcessedPayload
