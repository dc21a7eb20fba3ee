"""The SQS client for the paths that need one (quarantine, retry backoff).

boto3 is imported and the client created on first use only: it costs ~200 ms of
billed INIT that most invocations never need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqs_consumer.budget import MAX_PARALLEL_CALLS

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

# Short timeouts and botocore's standard retry mode: SQS answers in milliseconds, and
# calls run within the time reserve (budget.py), which cuts off whatever is still waiting.
CONNECT_TIMEOUT_SECONDS = 1
READ_TIMEOUT_SECONDS = 2
MAX_ATTEMPTS = 2


def default_client(endpoint_url: str | None) -> SQSClient:
    import boto3  # noqa: PLC0415  # deferred: see module docstring
    from botocore.config import Config  # noqa: PLC0415

    config = Config(
        retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        max_pool_connections=MAX_PARALLEL_CALLS,
    )
    return boto3.client("sqs", endpoint_url=endpoint_url, config=config)
