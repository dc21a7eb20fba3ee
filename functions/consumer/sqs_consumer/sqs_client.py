"""The SQS client for the paths that need one (quarantine, retry backoff).

boto3 is imported and the client created on first use only: it costs ~200 ms of
billed INIT that most invocations never need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqs_consumer.budget import client_config

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


def default_client(endpoint_url: str | None) -> SQSClient:
    import boto3  # noqa: PLC0415  # deferred: see module docstring

    return boto3.client("sqs", endpoint_url=endpoint_url, config=client_config())
