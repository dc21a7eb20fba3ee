"""Retry with backoff: a failed record comes back after a delay that grows with its receive count.

Without it, every retry waits out the whole visibility timeout. After the batch, the
consumer sets the visibility of each listed record with ChangeMessageVisibilityBatch:
exponential in the receive count, with jitter, capped; zero for records that were not
started (near the timeout, or behind a failed record of their FIFO group). If the
change fails, the record still comes back after the normal visibility timeout.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sqs_consumer.observability import logger
from sqs_consumer.sqs_client import default_client

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

MAX_VISIBILITY_SECONDS = 43_200
BATCH_ENTRIES = 10


@dataclass(frozen=True, slots=True)
class Backoff:
    base_seconds: float
    cap_seconds: float

    @property
    def enabled(self) -> bool:
        return self.base_seconds > 0

    def delay(self, receive_count: int, rand: Callable[[float, float], float] = random.uniform) -> int:
        """Equal jitter: between half and all of ``base * 2**(receive_count - 1)``, capped."""
        ceiling = min(self.cap_seconds, self.base_seconds * 2 ** max(0, receive_count - 1))
        return int(min(MAX_VISIBILITY_SECONDS, round(rand(ceiling / 2, ceiling))))


NO_BACKOFF = Backoff(0, 0)


@dataclass(frozen=True, slots=True)
class VisibilityChange:
    queue_arn: str
    receipt_handle: str
    seconds: int


class VisibilitySetter(Protocol):
    def change(self, changes: list[VisibilityChange]) -> None:
        """Apply what it can; never raise (the normal timeout is the fallback)."""


def queue_url_from_arn(arn: str, endpoint_url: str | None) -> str:
    _, _, _, region, account, name = arn.split(":", 5)
    base = endpoint_url.rstrip("/") if endpoint_url else f"https://sqs.{region}.amazonaws.com"
    return f"{base}/{account}/{name}"


class SqsVisibility:
    """ChangeMessageVisibilityBatch on the source queue, client created on first use."""

    def __init__(
        self,
        *,
        endpoint_url: str | None = None,
        client_factory: Callable[[str | None], SQSClient] = default_client,
    ) -> None:
        self._endpoint_url = endpoint_url
        self._client_factory = client_factory
        self._client: SQSClient | None = None

    def change(self, changes: list[VisibilityChange]) -> None:
        by_queue: dict[str, list[VisibilityChange]] = {}
        for change in changes:
            by_queue.setdefault(change.queue_arn, []).append(change)
        for arn, queue_changes in by_queue.items():
            url = queue_url_from_arn(arn, self._endpoint_url)
            for start in range(0, len(queue_changes), BATCH_ENTRIES):
                chunk = queue_changes[start : start + BATCH_ENTRIES]
                try:
                    if self._client is None:
                        self._client = self._client_factory(self._endpoint_url)
                    response = self._client.change_message_visibility_batch(
                        QueueUrl=url,
                        Entries=[
                            {"Id": str(i), "ReceiptHandle": c.receipt_handle, "VisibilityTimeout": c.seconds}
                            for i, c in enumerate(chunk)
                        ],
                    )
                    failed = response.get("Failed", [])
                except Exception as exc:  # the visibility timeout still brings the messages back
                    logger.warning("Retry backoff not applied", queue=url, records=len(chunk), error=str(exc))
                    continue
                if failed:
                    logger.warning("Retry backoff not applied to some records", queue=url, failed=len(failed))
