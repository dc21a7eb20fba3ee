"""An SQS client that refuses what SQS refuses and moto accepts.

It wraps a real boto3 client (moto's, in the tests) and checks every message sent
with ``send_message`` and ``send_message_batch`` against SQS's rules before passing
it on: at most 10 attributes, SQS's character set in bodies and string attribute
values, body plus attributes within the queue's ``MaximumMessageSize``, a whole batch
within the same limit, no empty attribute value, and FIFO deduplication ids SQS would take. A refused message
raises the ``ClientError`` SQS answers with (per entry, ``Failed`` with a sender fault).
"""

from __future__ import annotations

import re
from typing import Any

from botocore.exceptions import ClientError

from sqs_consumer.sqs_limits import (
    DEFAULT_MAX_MESSAGE_BYTES,
    MAX_DEDUPLICATION_ID_CHARS,
    MAX_MESSAGE_ATTRIBUTES,
    has_forbidden_characters,
    message_size,
)

_DEDUPLICATION_ID = re.compile(rf"^[!-~]{{1,{MAX_DEDUPLICATION_ID_CHARS}}}$")


def _client_error(code: str, message: str, operation: str) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 400}}
    return ClientError(response, operation)


class StrictSqs:
    """Delegates to ``client`` after checking each message as SQS would."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._max_sizes: dict[str, int] = {}
        self.refused: list[tuple[str, str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def max_message_bytes(self, queue_url: str) -> int:
        if queue_url not in self._max_sizes:
            attributes = self._client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["MaximumMessageSize"])
            value = attributes.get("Attributes", {}).get("MaximumMessageSize")
            self._max_sizes[queue_url] = int(value) if value else DEFAULT_MAX_MESSAGE_BYTES
        return self._max_sizes[queue_url]

    def problem(self, queue_url: str, entry: dict[str, Any]) -> tuple[str, str] | None:
        """The (code, message) SQS would answer for this message, or None."""
        body = entry.get("MessageBody", "")
        attributes = entry.get("MessageAttributes") or {}
        if has_forbidden_characters(body):
            return "InvalidMessageContents", "Invalid characters found in the message body"
        if len(attributes) > MAX_MESSAGE_ATTRIBUTES:
            return (
                "InvalidParameterValue",
                f"Number of message attributes [{len(attributes)}] exceeds the allowed maximum [10].",
            )
        for name, value in attributes.items():
            text = value.get("StringValue")
            data_type = str(value.get("DataType", ""))
            # SQS: "Name, type, value and the message body must not be empty or null".
            if not (text or value.get("BinaryValue")):
                kind = "Binary" if data_type.startswith("Binary") else "String"
                return (
                    "InvalidParameterValue",
                    f"Message (user) attribute '{name}' must contain a non-empty value of type '{kind}'.",
                )
            if text is not None and has_forbidden_characters(text):
                return "InvalidParameterValue", f"Message attribute '{name}' contains invalid characters"
        limit = self.max_message_bytes(queue_url)
        if message_size(body, attributes) > limit:
            return "InvalidParameterValue", f"Message must be shorter than {limit} bytes."
        dedup = entry.get("MessageDeduplicationId")
        if dedup is not None and not _DEDUPLICATION_ID.match(dedup):
            return "InvalidParameterValue", "Value for parameter MessageDeduplicationId is invalid"
        return None

    def send_message(self, **params: Any) -> Any:
        problem = self.problem(params["QueueUrl"], params)
        if problem is not None:
            self.refused.append(problem)
            raise _client_error(*problem, "SendMessage")
        return self._client.send_message(**params)

    def send_message_batch(self, **params: Any) -> Any:
        queue_url, entries = params["QueueUrl"], params["Entries"]
        total = sum(message_size(e.get("MessageBody", ""), e.get("MessageAttributes")) for e in entries)
        limit = self.max_message_bytes(queue_url)
        if total > limit:
            self.refused.append(("AWS.SimpleQueueService.BatchRequestTooLong", str(total)))
            raise _client_error(
                "AWS.SimpleQueueService.BatchRequestTooLong",
                f"Batch requests cannot be longer than {limit} bytes",
                "SendMessageBatch",
            )
        failed, accepted = [], []
        for entry in entries:
            problem = self.problem(queue_url, entry)
            if problem is None:
                accepted.append(entry)
            else:
                self.refused.append(problem)
                failed.append({"Id": entry["Id"], "SenderFault": True, "Code": problem[0], "Message": problem[1]})
        response: dict[str, Any] = {"Successful": [], "Failed": failed}
        if accepted:
            sent = self._client.send_message_batch(QueueUrl=queue_url, Entries=accepted)
            response["Successful"] = sent.get("Successful", [])
            response["Failed"] += sent.get("Failed", [])
        return response
