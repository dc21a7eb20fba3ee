"""``hello``: the demo event and the canary used to smoke-test a deployment."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sqs_consumer.models.base import BaseEvent


class HelloPayload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str
    simulate: Literal["ok", "flaky", "fail", "slow"] | None = Field(
        default=None,
        description=(
            "ok (or absent) succeeds; flaky fails while ApproximateReceiveCount is 1; "
            "fail always fails with a retryable error; slow sleeps delay_ms first."
        ),
    )
    delay_ms: int = Field(default=0, ge=0, le=900_000)


class HelloEvent(BaseEvent):
    event_type: Literal["hello"]
    payload: HelloPayload
