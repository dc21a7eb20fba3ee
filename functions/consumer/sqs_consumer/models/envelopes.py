"""The shapes that may carry an event to the queue besides SQS (docs/design.md §3): an SNS
notification (raw message delivery off), an EventBridge event as a rule's SQS target receives it.

Shapes only: envelopes.py unwraps bodies with them. Built on the first body that is not an event
alone (envelopes.py imports this module then): a batch of events never builds these models.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class SnsAttribute(BaseModel):
    """One of an SNS notification's MessageAttributes (a Binary value is base64 text)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    type: str = Field(alias="Type")
    value: str = Field(alias="Value")


class SnsNotification(BaseModel):
    """SNS's JSON around a message it delivers to SQS when raw message delivery is off."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    type: Literal["Notification"] = Field(alias="Type")
    message_id: str = Field(alias="MessageId", min_length=1)
    topic_arn: str = Field(alias="TopicArn", pattern=r"^arn:[^:]+:sns:")
    subject: str | None = Field(default=None, alias="Subject")
    message: str = Field(alias="Message", strict=True)
    timestamp: datetime = Field(alias="Timestamp")
    message_attributes: dict[str, SnsAttribute] = Field(default_factory=dict, alias="MessageAttributes")


class EventBridgeEvent(BaseModel):
    """An EventBridge event as a rule's SQS target receives it (no input transformer)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    version: str
    id: str = Field(min_length=1)
    detail_type: str = Field(alias="detail-type", min_length=1)
    source: str = Field(min_length=1)
    account: str
    time: datetime
    region: str
    resources: list[str]
    detail: dict[str, Any] = Field(strict=True)
    replay_name: str | None = Field(default=None, alias="replay-name")
