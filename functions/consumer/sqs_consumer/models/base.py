"""The message envelope shared by every event type (docs/design.md §3)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class BaseEvent(BaseModel):
    """Fields common to every event; subclasses narrow ``event_type`` and ``payload``.

    ``event_id`` is the idempotency key chosen by the producer. It is not the SQS
    message id: a producer that retries a send gets a new message id.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: str = Field(min_length=1, description="Producer-chosen idempotency key.")
    event_type: str = Field(description="Selects the payload model and the handler.")
    occurred_at: datetime | None = Field(default=None, description="ISO-8601 timestamp.")
