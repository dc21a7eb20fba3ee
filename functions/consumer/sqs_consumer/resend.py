"""Sending a record to its own queue again, as a new message: the same body, message attributes and
trace header (``AWSTraceHeader``, so the copy stays in its producer's trace), visible after a delay.
Its receive count starts again at 0, which is the point: a record whose dependency's breaker is
open on its last allowed receive waits for the dependency instead of going to the DLQ (docs/design.md
§6). Exactly-once holds by ``event_id``: the event never ran, or its run is in the idempotency store.

The record is deleted (left out of ``batchItemFailures``) only once SQS accepted the copy; a refused or
unconfirmed send leaves it listed. Standard queues only: a FIFO queue's copy would go to the back of
its group. Its SQS client is the quarantine's (clients.py), made on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sqs_consumer.budget import Deadline, run_parallel
from sqs_consumer.clients import sqs_client
from sqs_consumer.errors import describe
from sqs_consumer.models.trace import trace_attribute
from sqs_consumer.quarantine import to_send_format
from sqs_consumer.retry import queue_url_from_arn
from sqs_consumer.sqs_limits import DEFAULT_MAX_MESSAGE_BYTES, message_size

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

SEND_BATCH_ENTRIES = 10


class ResendFailedError(Exception):
    """The queue did not accept the copy: the record stays listed."""


@dataclass(frozen=True, slots=True)
class ResentMessage:
    queue_arn: str
    body: str
    attributes: dict[str, Any] | None  # as Lambda delivered them (camelCase)
    delay_s: int
    trace_header: str | None = None  # the record's AWSTraceHeader, a system attribute of the copy


class Resender(Protocol):
    def send_batch(self, messages: Sequence[ResentMessage], deadline: Deadline) -> list[Exception | None]:
        """Send each copy: ``None`` where accepted, the error where not (same order)."""
        ...


class SqsResender:
    def __init__(self, *, endpoint_url: str | None = None,
                 client_factory: Callable[[str | None], SQSClient] = sqs_client) -> None:  # fmt: skip
        self._endpoint_url = endpoint_url
        self._client_factory = client_factory
        self._client: SQSClient | None = None

    def send_batch(self, messages: Sequence[ResentMessage], deadline: Deadline) -> list[Exception | None]:
        if not messages:
            return []
        try:
            if self._client is None:
                self._client = self._client_factory(self._endpoint_url)
        except Exception as exc:
            return [ResendFailedError(f"SQS client unavailable: {describe(exc)}")] * len(messages)
        requests = _requests(messages)
        calls = [_sender(self._client, queue_url_from_arn(arn, self._endpoint_url), chunk) for arn, chunk in requests]
        results: list[Exception | None] = [None] * len(messages)
        for (_, chunk), outcome in zip(requests, run_parallel(calls, deadline), strict=True):
            for index, entry in chunk:
                if isinstance(outcome, BaseException):
                    results[index] = ResendFailedError(f"not sent again: {describe(outcome)}")
                else:
                    results[index] = outcome.get(entry["Id"], ResendFailedError("SQS gave no answer for this copy"))
        return results


def _requests(messages: Sequence[ResentMessage]) -> list[tuple[str, list[tuple[int, dict[str, Any]]]]]:
    """Entries by queue, 10 to a request and no more bytes than one message may have."""
    requests: list[tuple[str, list[tuple[int, dict[str, Any]]]]] = []
    sizes: list[int] = []
    for index, message in enumerate(messages):
        attributes = {name: to_send_format(value) for name, value in (message.attributes or {}).items()}
        entry: dict[str, Any] = {"Id": str(index), "MessageBody": message.body, "DelaySeconds": message.delay_s}
        if attributes:
            entry["MessageAttributes"] = attributes
        if message.trace_header:  # a system attribute: not counted in the message's size
            entry["MessageSystemAttributes"] = trace_attribute(message.trace_header)
        size = message_size(message.body, attributes)
        last = requests[-1] if requests else None
        if last is None or last[0] != message.queue_arn or len(last[1]) == SEND_BATCH_ENTRIES or \
                sizes[-1] + size > DEFAULT_MAX_MESSAGE_BYTES:  # fmt: skip
            requests.append((message.queue_arn, []))
            sizes.append(0)
        requests[-1][1].append((index, entry))
        sizes[-1] += size
    return requests


def _sender(client: SQSClient, url: str, chunk: list[tuple[int, dict[str, Any]]]) -> Callable[[], dict[str, Any]]:
    def send() -> dict[str, Exception | None]:
        response = client.send_message_batch(QueueUrl=url, Entries=[entry for _, entry in chunk])  # type: ignore[misc]
        outcome: dict[str, Exception | None] = {ok["Id"]: None for ok in response.get("Successful", [])}
        for failed in response.get("Failed", []):
            outcome[failed["Id"]] = ResendFailedError(f"{failed.get('Code')}: {failed.get('Message', '')}")
        return outcome

    return send
