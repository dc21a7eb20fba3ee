"""Retry with backoff: a failed record comes back after a delay that grows with its receive count.

Without it, every retry waits out the whole visibility timeout. After the batch, the
consumer sets the visibility of each listed record with ChangeMessageVisibilityBatch:
exponential in the receive count, with jitter, capped; zero for records that were not
started (near the timeout, or behind a failed record of their FIFO group). The calls run
in parallel within the time reserve (budget.py). If a change fails or is cut off, the
record still comes back after the normal visibility timeout.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sqs_consumer.budget import Deadline, run_parallel, shortfall
from sqs_consumer.clients import sqs_client
from sqs_consumer.errors import describe
from sqs_consumer.observability import logger

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

# SQS refuses a visibility that ends more than 12 hours after the message was received.
# The mapping may have received it up to its 300 s batching window before the invocation,
# which may itself run 900 s: a delay within this bound is always accepted.
MAX_VISIBILITY_SECONDS = 43_200
MAX_BACKOFF_SECONDS = MAX_VISIBILITY_SECONDS - 300 - 900
BATCH_ENTRIES = 10
# The DNS suffix of SQS endpoints in each partition (the partition is the ARN's second field).
_DNS_SUFFIX = {"aws-cn": "amazonaws.com.cn", "aws-iso": "c2s.ic.gov", "aws-iso-b": "sc2s.sgov.gov"}


@dataclass(frozen=True, slots=True)
class Backoff:
    base_seconds: float
    cap_seconds: float

    def __post_init__(self) -> None:
        if self.base_seconds and not 0 < self.base_seconds <= self.cap_seconds <= MAX_BACKOFF_SECONDS:
            raise ValueError(
                f"retry backoff needs 0 < base ({self.base_seconds:g}) <= cap ({self.cap_seconds:g}) "
                f"<= {MAX_BACKOFF_SECONDS}"
            )

    @property
    def enabled(self) -> bool:
        return self.base_seconds > 0

    def ceiling(self, receive_count: int) -> float:
        """The longest delay after the ``receive_count``-th receive: ``base * 2**(receive_count - 1)``, capped."""
        doublings: int = min(64, max(0, receive_count - 1))
        return min(self.cap_seconds, self.base_seconds * float(2**doublings))

    def delay(self, receive_count: int, rand: Callable[[float, float], float] | None = None) -> int:
        """Equal jitter: between half and all of the ceiling."""
        ceiling = self.ceiling(receive_count)
        return int(min(MAX_BACKOFF_SECONDS, round((rand or _JITTER.uniform)(ceiling / 2, ceiling))))


# The OS's randomness, not the random module's state: environments restored from one SnapStart
# snapshot share that state, and would all pick the same jitter (their retries would arrive together).
_JITTER = random.SystemRandom()


NO_BACKOFF = Backoff(0, 0)


@dataclass(frozen=True, slots=True)
class VisibilityChange:
    queue_arn: str
    receipt_handle: str
    seconds: int


class VisibilitySetter(Protocol):
    def change(self, changes: list[VisibilityChange], deadline: Deadline) -> None:
        """Apply what it can before the deadline; never raise (the normal timeout is the fallback)."""


def queue_url_from_arn(arn: str, endpoint_url: str | None = None) -> str:
    """The queue URL of an SQS ARN, on ``endpoint_url`` or on the regional endpoint of its partition."""
    _, partition, _, region, account, name = arn.split(":", 5)
    base = endpoint_url.rstrip("/") if endpoint_url else f"https://sqs.{region}.{dns_suffix(partition)}"
    return f"{base}/{account}/{name}"


def dns_suffix(partition: str) -> str:
    return _DNS_SUFFIX.get(partition, "amazonaws.com")


class SqsVisibility:
    """ChangeMessageVisibilityBatch on the source queue, client created on first use."""

    def __init__(
        self,
        *,
        endpoint_url: str | None = None,
        client_factory: Callable[[str | None], SQSClient] = sqs_client,
    ) -> None:
        self._endpoint_url = endpoint_url
        self._client_factory = client_factory
        self._client: SQSClient | None = None

    def change(self, changes: list[VisibilityChange], deadline: Deadline) -> None:
        if not changes:
            return
        try:
            if self._client is None:
                self._client = self._client_factory(self._endpoint_url)
        except Exception as exc:  # the visibility timeout still brings the messages back
            logger.warning("Retry backoff not applied", records=len(changes), error=describe(exc))
            return
        client = self._client
        by_queue: dict[str, list[VisibilityChange]] = {}
        for change in changes:
            by_queue.setdefault(change.queue_arn, []).append(change)
        calls = []
        for arn, queue_changes in by_queue.items():
            url = queue_url_from_arn(arn, self._endpoint_url)
            for start in range(0, len(queue_changes), BATCH_ENTRIES):
                calls.append(_changer(client, url, queue_changes[start : start + BATCH_ENTRIES]))
        missed = shortfall(run_parallel(calls, deadline))
        if missed:
            logger.warning(
                "Retry backoff not applied to some records; the visibility timeout brings them back",
                extra=missed.fields(),
            )


def _changer(client: SQSClient, url: str, chunk: list[VisibilityChange]) -> Callable[[], int]:
    def change() -> int:
        response = client.change_message_visibility_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": c.receipt_handle, "VisibilityTimeout": c.seconds}
                for i, c in enumerate(chunk)
            ],
        )
        return len(response.get("Failed", []))

    return change
