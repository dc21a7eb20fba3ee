"""The naive reference for cold start: what the AWS samples and most tutorials do.

A boto3 client, the Powertools Logger, Metrics and Tracer all created at import,
and records parsed with the Powertools parser's SQS models.
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from pydantic import BaseModel

sqs = boto3.client("sqs", region_name=os.environ.get("AWS_REGION", "us-east-1"))
logger = Logger()
metrics = Metrics(namespace="Naive")
tracer = Tracer()
processor = BatchProcessor(event_type=EventType.SQS, model=SqsRecordModel)


class HelloPayload(BaseModel):
    name: str


class HelloEvent(BaseModel):
    event_id: str
    event_type: str
    payload: HelloPayload


def record_handler(record: SqsRecordModel) -> None:
    HelloEvent.model_validate_json(str(record.body))


@tracer.capture_lambda_handler
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> Any:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
