"""The SQS client for the rare paths that need one (quarantine, retry backoff).

boto3 is imported and the client created on first use only: it costs ~200 ms of
billed INIT that most invocations never need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


def default_client(endpoint_url: str | None) -> SQSClient:
    import boto3  # noqa: PLC0415  # deferred: see module docstring
    from botocore.config import Config  # noqa: PLC0415

    # Short timeouts and botocore's standard retry mode: an SQS outage must not eat
    # the function's time budget; the record is retried instead.
    config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=5)
    return boto3.client("sqs", endpoint_url=endpoint_url, config=config)
