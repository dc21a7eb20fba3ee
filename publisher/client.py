"""SendMessageBatch within SQS limits, with retries of the entries that failed."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqs_consumer.errors import PoisonMessageError
from sqs_consumer.registry import EventRegistry
from sqs_consumer.routes import REGISTRY
from sqs_consumer.sqs_limits import deduplication_id, message_size

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

MAX_BATCH_ENTRIES = 10
# SQS caps a message, and a whole SendMessageBatch request, at 1 MiB (1,048,576 bytes).
MAX_BATCH_BYTES = 1_048_576
EVENT_TYPE_ATTRIBUTE = "event_type"


@dataclass(frozen=True)
class PublishResult:
    event_id: str | None
    message_id: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.message_id is not None


@dataclass(frozen=True)
class _Entry:
    index: int
    event_id: str
    body: str
    event_type: str

    def size(self) -> int:
        attribute = {"DataType": "String", "StringValue": self.event_type}
        return message_size(self.body, {EVENT_TYPE_ATTRIBUTE: attribute})


class EventPublisher:
    def __init__(
        self,
        queue_url: str,
        client: SQSClient,
        *,
        registry: EventRegistry = REGISTRY,
        max_attempts: int = 5,
        base_delay: float = 0.1,
        max_delay: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        max_message_bytes: int | None = None,
    ) -> None:
        """``max_message_bytes``: the queue's MaximumMessageSize; read from the queue when not given
        (SQS's largest, 1 MiB, when the caller may not read the queue's attributes)."""
        self._queue_url = queue_url
        self._client = client
        self._registry = registry
        self._fifo = queue_url.endswith(".fifo")
        self._max_attempts = max_attempts
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._sleep = sleep
        self._max_message_bytes = max_message_bytes

    def publish(self, events: Iterable[Mapping[str, Any]], *, group_id: str | None = None) -> list[PublishResult]:
        """Validate and send; one result per event, in order."""
        if self._fifo and not group_id:
            raise ValueError("a FIFO queue needs a message group id")
        results: dict[int, PublishResult] = {}
        entries: list[_Entry] = []
        for index, document in enumerate(events):
            body = json.dumps(document, separators=(",", ":"))
            try:
                event = self._registry.parse(body)
            except PoisonMessageError as error:
                event_id = document.get("event_id") if isinstance(document, Mapping) else None
                results[index] = PublishResult(str(event_id) if event_id else None, error=f"{error.kind}: {error}")
                continue
            entry = _Entry(index, event.event_id, body, event.event_type)
            limit = self._queue_max_bytes()
            if entry.size() > limit:
                results[index] = PublishResult(
                    event.event_id, error=f"message is larger than the queue's maximum of {limit} bytes"
                )
                continue
            entries.append(entry)
        # A request carries no more bytes than one message may have (conservative where the queue's
        # maximum is below SQS's 1 MiB batch limit).
        for chunk in _chunks(entries, self._queue_max_bytes() if entries else MAX_BATCH_BYTES):
            results.update(self._send_with_retries(chunk, group_id))
        return [results[index] for index in sorted(results)]

    def _send_with_retries(self, chunk: Sequence[_Entry], group_id: str | None) -> dict[int, PublishResult]:
        pending = {str(entry.index): entry for entry in chunk}
        results: dict[int, PublishResult] = {}
        for attempt in range(1, self._max_attempts + 1):
            try:
                response = self._client.send_message_batch(
                    QueueUrl=self._queue_url, Entries=[self._request_entry(e, group_id) for e in pending.values()]
                )
            except Exception as error:  # botocore already retried transient errors
                last_error = f"{type(error).__name__}: {error}"
                failed_ids = set(pending)
                retryable = not is_permanent(error)
            else:
                for success in response.get("Successful", []):
                    entry = pending.pop(success["Id"])
                    results[entry.index] = PublishResult(entry.event_id, message_id=success["MessageId"])
                failed_ids = set()
                retryable = False
                for failure in response.get("Failed", []):
                    entry = pending[failure["Id"]]
                    message = f"{failure['Code']}: {failure.get('Message', '')}".strip(": ")
                    if failure.get("SenderFault"):
                        # The request itself is wrong: sending it again cannot help.
                        results[entry.index] = PublishResult(entry.event_id, error=message)
                        pending.pop(failure["Id"])
                    else:
                        failed_ids.add(failure["Id"])
                        last_error = message
                        retryable = True
            if not pending or not retryable:
                break
            if attempt < self._max_attempts:
                self._sleep(self._backoff(attempt))
        for entry in pending.values():
            results[entry.index] = PublishResult(entry.event_id, error=f"not sent after retries: {last_error}")
        return results

    def _queue_max_bytes(self) -> int:
        if self._max_message_bytes is None:
            try:
                attributes = self._client.get_queue_attributes(
                    QueueUrl=self._queue_url, AttributeNames=["MaximumMessageSize"]
                ).get("Attributes", {})
                self._max_message_bytes = int(attributes.get("MaximumMessageSize", MAX_BATCH_BYTES))
            except Exception:  # no permission to read it, or a stand-in without it: SQS's own limit
                self._max_message_bytes = MAX_BATCH_BYTES
        return self._max_message_bytes

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform between 0 and the capped exponential delay."""
        return random.uniform(0, min(self._max_delay, self._base_delay * 2 ** (attempt - 1)))  # noqa: S311

    def _request_entry(self, entry: _Entry, group_id: str | None) -> SendMessageBatchRequestEntryTypeDef:
        request: SendMessageBatchRequestEntryTypeDef = {
            "Id": str(entry.index),
            "MessageBody": entry.body,
            "MessageAttributes": {EVENT_TYPE_ATTRIBUTE: {"DataType": "String", "StringValue": entry.event_type}},
        }
        if self._fifo and group_id:
            request["MessageGroupId"] = group_id
            # The business id deduplicates a producer's retries within SQS's 5-minute window;
            # an id SQS cannot take as it is (too long, other characters) is hashed, never cut.
            request["MessageDeduplicationId"] = deduplication_id(entry.event_id)
        return request


# Errors that no retry can fix: the request, the queue or the caller's rights are wrong.
_RETRYABLE_CLIENT_CODES = frozenset(
    {"RequestThrottled", "ThrottlingException", "KmsThrottled", "KMS.ThrottlingException"}
)


def is_permanent(error: Exception) -> bool:
    """A client error (HTTP 4xx) other than throttling: AccessDenied, a queue that does not exist..."""
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return False
    code = str(response.get("Error", {}).get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return 400 <= status < 500 and code not in _RETRYABLE_CLIENT_CODES and "Throttl" not in code


def _chunks(entries: Sequence[_Entry], max_bytes: int = MAX_BATCH_BYTES) -> Iterator[list[_Entry]]:
    chunk: list[_Entry] = []
    size = 0
    for entry in entries:
        if chunk and (len(chunk) == MAX_BATCH_ENTRIES or size + entry.size() > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(entry)
        size += entry.size()
    if chunk:
        yield chunk
