"""The function's AWS clients (SQS for the quarantine and the retry backoff, DynamoDB for the
idempotency store, S3 for offloaded payloads), made with botocore on first use only.

botocore, not boto3: boto3 adds nothing the function uses (no resources, no S3 transfers) and
importing it, with s3transfer, cost ~100 ms of every cold start (docs/decisions/019-botocore-clients.md). The clients
share one botocore session, and the config of budget.py (short timeouts, standard retries).
"""

from __future__ import annotations

import threading
from functools import cache
from typing import TYPE_CHECKING, Any

from sqs_consumer.budget import client_config
from sqs_consumer.collector import paused

if TYPE_CHECKING:
    from botocore.config import Config
    from botocore.session import Session
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

# botocore sessions are not thread-safe while they create clients; the function creates a
# client from the thread that first needs it, which may be one of budget.py's workers.
_CREATING = threading.Lock()


@cache
def _session() -> Session:
    import botocore.session  # noqa: PLC0415  # deferred: see module docstring

    return botocore.session.get_session()


def _client(service: str, endpoint_url: str | None, config: Config | None = None) -> Any:
    # Without collections: what a client's creation makes (botocore's modules on the first, the service's
    # model, the client's class) lives as long as the process (collector.py).
    with _CREATING, paused():
        return _session().create_client(service, endpoint_url=endpoint_url, config=config or client_config())


def sqs_client(endpoint_url: str | None) -> SQSClient:
    client: SQSClient = _client("sqs", endpoint_url)
    return client


def dynamodb_client(endpoint_url: str | None = None) -> DynamoDBClient:
    client: DynamoDBClient = _client("dynamodb", endpoint_url)
    return client


def s3_client(endpoint_url: str | None = None) -> S3Client:
    """For offloaded payloads only: never made (nor its model loaded) by a batch without pointers.

    Against a local endpoint (moto_server on 127.0.0.1), path-style addressing: a bucket cannot be
    a subdomain of an IP address.
    """
    config = client_config()
    if endpoint_url is not None:
        from botocore.config import Config  # noqa: PLC0415  # deferred: see module docstring

        config = config.merge(Config(s3={"addressing_style": "path"}))
    client: S3Client = _client("s3", endpoint_url, config)
    return client


def preload_service_models(services: list[str]) -> None:
    """Load the clients' service models into the session (for a SnapStart snapshot): no client,
    no credentials, no connection."""
    session = _session()
    with _CREATING:
        for service in services:
            session.get_service_model(service)


def client_for(service: str, endpoint_url: str | None = None) -> Any:
    """A client of a service the function calls only now and then (Lambda and EventBridge Scheduler, when a
    dependency's breaker opens or a probe runs): never made by a batch whose breakers stay closed."""
    return _client(service, endpoint_url)
