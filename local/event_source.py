"""An SQS event source mapping, emulated: what Lambda's pollers do for the function.

Per worker (one per unit of maximum concurrency): long-poll the queue, gather
up to the batch size within the batching window, invoke the function with the
exact Lambda event, then settle the batch the way Lambda does:

- a function error or timeout deletes nothing: every message returns after
  the visibility timeout;
- a valid ``batchItemFailures`` response deletes every message not listed;
- an invalid response (unknown or empty ``itemIdentifier``, not an object)
  fails the whole batch.

Between polls each worker asks the mapping's settings (``state``, read from moto's Lambda API by
local/lambda_api.py): while the mapping is disabled no worker polls, and only the first
``MaximumConcurrency`` workers do, so an ``UpdateEventSourceMapping`` pauses or resizes it. A batch
already received is still invoked and settled, as Lambda finishes what it has taken.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from local.lambda_api import MappingSettings
from local.sqs_server import REGION, Queue
from local.template import MappingSpec

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

    from local.emulator import FunctionLog, Invocation

# The attributes Lambda copies into each record.
RECORD_ATTRIBUTES = (
    "ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp",
    "SequenceNumber", "MessageGroupId", "MessageDeduplicationId", "AWSTraceHeader", "DeadLetterQueueSourceArn",
)  # fmt: skip
# Longest single ReceiveMessage wait locally, so Ctrl-C is served within seconds.
MAX_LOCAL_WAIT_SECONDS = 5
# How often an idle worker (mapping disabled, or beyond its maximum concurrency) looks again.
IDLE_CHECK_SECONDS = 0.25


class SettingsSource(Protocol):
    def current(self) -> MappingSettings: ...


@dataclass(frozen=True)
class FixedSettings:
    """A mapping nothing updates: always enabled, at the template's maximum concurrency."""

    settings: MappingSettings

    def current(self) -> MappingSettings:
        return self.settings


class Invoker(Protocol):
    def invoke(self, event: dict[str, Any]) -> Invocation: ...


@dataclass(frozen=True)
class BatchResult:
    """How one invocation settled its batch."""

    message_ids: tuple[str, ...]
    deleted: tuple[str, ...]
    failed: tuple[str, ...]
    reason: str  # "ok", "partial", "function_error", "invalid_response"
    duration_seconds: float = 0.0
    log: FunctionLog | None = None  # the function's lines for this invocation


def to_lambda_record(message: MessageTypeDef, queue_arn: str) -> dict[str, Any]:
    """A ReceiveMessage message in the shape Lambda delivers it."""
    attributes = message.get("Attributes", {})
    message_attributes = {}
    for name, value in message.get("MessageAttributes", {}).items():
        converted: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}
        if "StringValue" in value:
            converted["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            converted["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
        message_attributes[name] = converted
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {name: attributes[name] for name in RECORD_ATTRIBUTES if name in attributes},
        "messageAttributes": message_attributes,
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def settle(message_ids: Sequence[str], invocation: Invocation) -> tuple[set[str], str]:
    """The ids that stay on the queue after this invocation, and why."""
    everything = set(message_ids)
    if invocation.function_error:
        return everything, "function_error"
    payload = invocation.payload
    if payload is None or payload == {}:
        return set(), "ok"
    if not isinstance(payload, dict):
        return everything, "invalid_response"
    items = payload.get("batchItemFailures")
    if items is None or items == []:
        return set(), "ok"
    if not isinstance(items, list):
        return everything, "invalid_response"
    failed = set()
    for item in items:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or identifier not in everything:
            return everything, "invalid_response"
        failed.add(identifier)
    return failed, "partial"


class EventSourceMapping:
    """Polls a queue and invokes the function, like a Lambda SQS event source mapping."""

    def __init__(
        self,
        client: SQSClient,
        queue: Queue,
        mapping: MappingSpec,
        invokers: Sequence[Invoker],
        *,
        wait_time_seconds: int,
        on_batch: Callable[[BatchResult], None] = lambda _: None,
        state: SettingsSource | None = None,
    ) -> None:
        if len(invokers) < 1:
            raise ValueError("at least one function instance is needed")
        self._client = client
        self._queue = queue
        self._mapping = mapping
        self._invokers = list(invokers)
        self._wait = max(0, min(wait_time_seconds, MAX_LOCAL_WAIT_SECONDS))
        self._on_batch = on_batch
        self._state = state or FixedSettings(MappingSettings(enabled=True, max_concurrency=mapping.max_concurrency))
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._polling: set[int] = set()
        self.errors: list[BaseException] = []

    def start(self) -> None:
        for index, invoker in enumerate(self._invokers):
            thread = threading.Thread(target=self._worker, args=(index, invoker), name=f"poller-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float | None = None) -> None:
        """Stop polling; batches in flight finish and are settled."""
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout)

    @property
    def polling(self) -> frozenset[int]:
        """The workers polling or invoking now (the others idle: mapping disabled, or beyond its concurrency)."""
        return frozenset(self._polling)

    def polls(self, index: int) -> bool:
        """Whether worker ``index`` polls now: the mapping is enabled and within its maximum concurrency."""
        settings = self._state.current()
        return settings.enabled and index < settings.max_concurrency

    def _worker(self, index: int, invoker: Invoker) -> None:
        while not self._stopping.is_set():
            try:
                if not self.polls(index):
                    self._polling.discard(index)
                    self._stopping.wait(IDLE_CHECK_SECONDS)
                    continue
                self._polling.add(index)
                messages = self._gather(index)
                if messages:
                    self._invoke(invoker, messages)
            except Exception as error:  # keep polling, as Lambda's pollers do
                self.errors.append(error)
                time.sleep(0.5)

    def _gather(self, index: int) -> list[MessageTypeDef]:
        batch_size = self._mapping.batch_size
        window = self._mapping.batching_window_seconds
        messages: list[MessageTypeDef] = []
        deadline = time.monotonic() + window
        while len(messages) < batch_size and not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            wait = self._wait if not messages else max(0, min(self._wait, int(remaining)))
            received = self._client.receive_message(
                QueueUrl=self._queue.url,
                MaxNumberOfMessages=min(10, batch_size - len(messages)),
                WaitTimeSeconds=wait,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            messages.extend(received)
            # Without a window Lambda invokes with what one poll returned.
            if messages and (window == 0 or time.monotonic() >= deadline):
                break
            if not messages and not self.polls(index):  # paused or resized while waiting: stop polling
                break
        return messages

    def _invoke(self, invoker: Invoker, messages: list[MessageTypeDef]) -> None:
        event = {"Records": [to_lambda_record(message, self._queue.arn) for message in messages]}
        ids = [message["MessageId"] for message in messages]
        invocation = invoker.invoke(event)
        failed, reason = settle(ids, invocation)
        if not self._mapping.report_batch_item_failures and reason == "partial":
            failed, reason = set(), "ok"  # without the setting Lambda ignores the response
        to_delete = [message for message in messages if message["MessageId"] not in failed]
        for start in range(0, len(to_delete), 10):
            chunk = to_delete[start : start + 10]
            self._client.delete_message_batch(
                QueueUrl=self._queue.url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
        deleted = tuple(message["MessageId"] for message in to_delete)
        listed = tuple(i for i in ids if i in failed)
        self._on_batch(BatchResult(tuple(ids), deleted, listed, reason, invocation.duration_seconds, invocation.log))
