"""Batches and the bare reference the in-process benchmarks share (light: imports no CDK)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from sqs_consumer.models import HelloEvent
from sqs_consumer.testing import events as sqs


def hello_batch(size: int) -> dict[str, Any]:
    return sqs.event(*(sqs.record(sqs.body("hello", {"name": f"user-{i}"})) for i in range(size)))


def reference_handler(event: dict[str, Any]) -> Any:
    """A Powertools BatchProcessor that only validates each body: the floor any consumer pays."""
    processor = BatchProcessor(EventType.SQS)
    return process_partial_response(event, lambda record: HelloEvent.model_validate_json(record.body), processor, None)
