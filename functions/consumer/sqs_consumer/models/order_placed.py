"""``order.placed``: a customer placed an order; the handler hands it to the orders API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sqs_consumer.models.base import BaseEvent


class OrderLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    sku: str = Field(min_length=1)
    quantity: int = Field(ge=1)


class OrderPlacedPayload(BaseModel):
    # Producers may add fields; they are passed on to the orders API as they came.
    model_config = ConfigDict(frozen=True, extra="allow")

    order_id: str = Field(min_length=1)
    customer_id: str = Field(min_length=1)
    lines: tuple[OrderLine, ...] = Field(min_length=1)


class OrderPlacedEvent(BaseEvent):
    event_type: Literal["order.placed"]
    payload: OrderPlacedPayload
