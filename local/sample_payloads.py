"""The payloads of offloaded sample events: events/payloads/KEY.json, put in S3 where a sample runs.

A sample of an offloaded event (`make event SHAPE=offloaded`) is the pointer body an extended client
sends; its payload is a file beside the samples. Before a sample runs, the files are put in the
bucket the pointers name: in moto's in-process S3 for the sample's expected outcome and the unit
tests, in the local pipeline's moto_server for `make invoke` and the end-to-end tests.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from moto import mock_aws

from sqs_consumer.payload_store import S3Payloads
from sqs_consumer.payloads import PayloadPointer
from sqs_consumer.settings import ConsumerSettings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SAMPLE_BUCKET = "sample-payloads"
PAYLOADS = "payloads"
MAX_BYTES: int = ConsumerSettings.model_fields["max_payload_bytes"].default
# A key for moto alone, given so that no credentials of the shell are looked for.
MOTO_KEY = "testing"


def write_payload(events_dir: Path, key: str, body: str) -> tuple[str, int]:
    """Write an offloaded sample's payload; the pointer body that names it and its size in bytes."""
    folder = events_dir / PAYLOADS
    folder.mkdir(exist_ok=True)
    (folder / f"{key}.json").write_text(body)
    return PayloadPointer(SAMPLE_BUCKET, key).body(), len(body.encode())


def stage(s3: S3Client, events_dir: Path) -> int:
    """Put every sample payload in the sample bucket (made if missing); how many."""
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=SAMPLE_BUCKET)
    files = sorted((events_dir / PAYLOADS).glob("*.json"))
    for path in files:
        s3.put_object(Bucket=SAMPLE_BUCKET, Key=path.stem, Body=path.read_bytes())
    return len(files)


@contextlib.contextmanager
def in_process(events_dir: Path) -> Iterator[S3Payloads]:
    """The consumer's payload store on moto's in-process S3, holding the sample payloads."""
    with mock_aws():
        client: Any = _session().client(
            "s3", region_name="us-east-1", aws_access_key_id=MOTO_KEY, aws_secret_access_key=MOTO_KEY
        )
        stage(client, events_dir)
        yield S3Payloads(MAX_BYTES, client_factory=lambda _: client)


@functools.cache
def _session() -> boto3.Session:
    """One session for every sample run in a process: each mock_aws() would start boto3's default session
    again, and a new session loads S3's model again (about 0.1 s)."""
    return boto3.Session()
