"""The message envelope shared by every event type (docs/design.md §3)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class BaseEvent(BaseModel):
    """Fields common to every event; subclasses narrow ``event_type`` and ``payload``.

    ``event_id`` is the idempotency key chosen by the producer. It is not the SQS
    message id: a producer that retries a send gets a new message id.

    ``event_version`` is the version of the event type's shape; absent, it is 1, the shape of every
    message sent before versions existed. A model at version 1 inherits this field (1, or absent); a
    model at version N > 1 narrows it to ``Literal[N]``, required, so that the per-record parse refuses
    every other version and only those bodies go through their route's upcasters (registry.py).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: str = Field(min_length=1, description="Producer-chosen idempotency key.")
    event_type: str = Field(description="Selects the payload model and the handler.")
    event_version: int = Field(
        default=1, ge=1, le=1, description="The version of the event type's shape; absent means 1."
    )
    occurred_at: datetime | None = Field(default=None, description="ISO-8601 timestamp.")
