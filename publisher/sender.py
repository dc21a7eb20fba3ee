"""One SendMessageBatch request, with retries of the entries that failed; safe to call from many threads.

On a FIFO queue (a request holds one message group) an entry is never sent after a later message of
its group: a failed entry is retried only while no later entry of its request was accepted, and once
an entry has failed for good the entries after it are not sent (publisher.dispatch holds back the
group's later requests the same way). Such entries are reported failed, saying why: the producer decides.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from operations.errors import one_line
from publisher.batching import Batch, Entry
from publisher.offload import PayloadStore
from sqs_consumer.models.trace import trace_attribute
from sqs_consumer.sqs_limits import deduplication_id

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef


@dataclass(frozen=True)
class PublishResult:
    event_id: str | None
    message_id: str | None = None
    error: str | None = None
    # Set when no request could send the event whatever it held: SQS refused the request itself for a
    # reason no retry fixes (the queue does not exist, the caller may not send, no credentials). The
    # same for every event of the run, so a tool reports it once (``code: message``), not per event.
    cause: str | None = None
    # The X-Ray trace header the message was sent with (its AWSTraceHeader), when it was sent with one.
    trace_header: str | None = None

    @property
    def ok(self) -> bool:
        return self.message_id is not None


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts per batch; between them, full jitter: uniform between 0 and the capped exponential delay."""

    max_attempts: int = 5
    base_delay: float = 0.1
    max_delay: float = 5.0

    def backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))  # noqa: S311


class BatchSender:
    def __init__(
        self,
        queue_url: str,
        client: SQSClient,
        *,
        retry: RetryPolicy,
        payloads: PayloadStore | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._queue_url = queue_url
        self._client = client
        self._fifo = queue_url.endswith(".fifo")
        self._retry = retry
        self._payloads = payloads
        self._sleep = sleep

    def send(self, batch: Batch) -> dict[int, PublishResult]:
        """Stores the batch's offloaded events, then sends; a result for every entry, never an exception."""
        results: dict[int, PublishResult] = {}
        ready = []
        first_failed: Entry | None = None
        for entry in batch.entries:
            if first_failed is not None:
                results[entry.index] = held_back(entry, first_failed.group_id, first_failed.event_id)
                continue
            error = self._store(entry)
            if error is None:
                ready.append(entry)
            else:
                results[entry.index] = PublishResult(entry.event_id, error=error)
                first_failed = entry if self._fifo else None
        if ready:
            results.update(self._send_with_retries(ready))
        return results

    def _store(self, entry: Entry) -> str | None:
        if entry.pointer is None:
            return None
        if self._payloads is None:
            return "offloaded entry without a payload store"
        try:
            self._payloads.store(entry)
        except Exception as error:  # botocore already retried throttling and 5xx
            return f"payload not stored at {entry.pointer}: {type(error).__name__}: {error}"
        return None

    def _send_with_retries(self, entries: list[Entry]) -> dict[int, PublishResult]:
        pending = {str(entry.index): entry for entry in entries}
        results: dict[int, PublishResult] = {}
        last_error = ""
        cause: str | None = None
        for attempt in range(1, self._retry.max_attempts + 1):
            try:
                response: Any = self._client.send_message_batch(
                    QueueUrl=self._queue_url, Entries=[self._request_entry(entry) for entry in pending.values()]
                )
            except Exception as error:  # botocore already retried transient errors
                last_error = f"{type(error).__name__}: {error}"
                retryable = not is_permanent(error)
                cause = None if retryable else one_line(error)
            else:
                failures = self._settle(response, pending, results)
                if self._fifo:
                    self._keep_group_order(pending, results, failures)
                retryable, last_error = bool(failures), next(reversed(failures.values()), last_error)
                cause = None
            if not pending or not retryable:
                break
            if attempt < self._retry.max_attempts:
                self._sleep(self._retry.backoff(attempt))
        for entry in pending.values():
            why = f"not sent: {last_error}" if cause else f"not sent after retries: {last_error}"
            results[entry.index] = PublishResult(entry.event_id, error=why, cause=cause)
        return results

    @staticmethod
    def _settle(response: Any, pending: dict[str, Entry], results: dict[int, PublishResult]) -> dict[str, str]:
        """Records successes and sender faults; returns the other failures' errors by entry Id, leaving
        those entries in ``pending`` as worth sending again."""
        for success in response.get("Successful", []):
            entry = pending.pop(success["Id"])
            results[entry.index] = PublishResult(
                entry.event_id, message_id=success["MessageId"], trace_header=entry.trace_header
            )
        failures: dict[str, str] = {}
        for failure in response.get("Failed", []):
            entry = pending[failure["Id"]]
            message = f"{failure['Code']}: {failure.get('Message', '')}".strip(": ")
            if failure.get("SenderFault"):
                # The entry itself is wrong: sending it again cannot help.
                results[entry.index] = PublishResult(entry.event_id, error=message)
                pending.pop(failure["Id"])
            else:
                failures[failure["Id"]] = message
        return failures

    @staticmethod
    def _keep_group_order(
        pending: dict[str, Entry], results: dict[int, PublishResult], failures: dict[str, str]
    ) -> None:
        """Fails, instead of leaving to a retry, each pending entry a retry would put out of its group's
        order: one before a later accepted entry of its request, or one after an entry failed for good."""
        last_accepted = max((index for index, result in results.items() if result.ok), default=-1)
        for key, entry in sorted(pending.items(), key=lambda item: item[1].index):
            first_failed = min((index for index, result in results.items() if not result.ok), default=None)
            if entry.index < last_accepted:
                results[entry.index] = PublishResult(entry.event_id, error=(
                    f"{failures.get(key, 'failed')}; not retried: later messages of group {entry.group_id} were "
                    "already accepted, so a retry would arrive after them (the producer decides whether to resend it)"
                ))  # fmt: skip
            elif first_failed is not None and first_failed < entry.index:
                results[entry.index] = held_back(entry, entry.group_id, results[first_failed].event_id)
            else:
                continue
            failures.pop(key, None)
            del pending[key]

    def _request_entry(self, entry: Entry) -> SendMessageBatchRequestEntryTypeDef:
        request: SendMessageBatchRequestEntryTypeDef = {
            "Id": str(entry.index),
            "MessageBody": entry.body,
            "MessageAttributes": {name: {"DataType": value["DataType"], "StringValue": value["StringValue"]}
                                  for name, value in entry.attributes.items()},
        }  # fmt: skip
        if entry.trace_header:
            request["MessageSystemAttributes"] = trace_attribute(entry.trace_header)  # type: ignore[typeddict-item]
        if entry.group_id:  # FIFO: the ordering group; standard: the tenant, for a fair queue
            request["MessageGroupId"] = entry.group_id
        if self._fifo and entry.group_id:
            # The business id deduplicates a producer's retries within SQS's 5-minute window;
            # an id SQS cannot take as it is (too long, other characters) is hashed, never cut.
            request["MessageDeduplicationId"] = deduplication_id(entry.event_id)
        return request


def held_back(entry: Entry, group_id: str | None, failed_event_id: str | None) -> PublishResult:
    """The result of an entry of a FIFO group not sent because an earlier message of its group was not."""
    error = f"not sent: an earlier message of group {group_id} was not sent ({failed_event_id})"
    return PublishResult(entry.event_id, error=error)


# Errors that no retry can fix: the request, the queue or the caller's rights are wrong.
_RETRYABLE_CLIENT_CODES = frozenset(
    {"RequestThrottled", "ThrottlingException", "KmsThrottled", "KMS.ThrottlingException"}
)
# botocore's errors raised before any request is made: no credentials, no region. By name, so that
# this module does not import botocore.
_CALLER_ERRORS = frozenset({"NoCredentialsError", "PartialCredentialsError", "NoRegionError"})


def is_permanent(error: Exception) -> bool:
    """A client error (HTTP 4xx) other than throttling: AccessDenied, a queue that does not exist...;
    or no credentials or region to make a request with."""
    if type(error).__name__ in _CALLER_ERRORS:
        return True
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return False
    code = str(response.get("Error", {}).get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return 400 <= status < 500 and code not in _RETRYABLE_CLIENT_CODES and "Throttl" not in code
