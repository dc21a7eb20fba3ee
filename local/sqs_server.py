"""moto's server on loopback (SQS, DynamoDB and S3), with the queues, tables and buckets of the synthesized
template."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from local.processes import LOOPBACK, ChildProcess, free_port, wait_for_port
from local.template import LocalPlan, QueueSpec

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

ROOT = Path(__file__).resolve().parents[1]
REGION = "us-east-1"
# moto accepts any credentials; these keep boto3 from looking for real ones.
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": REGION}


@dataclass(frozen=True)
class Queue:
    url: str
    arn: str


class SqsServer:
    """Starts moto's server (local/moto_server.py) on a free loopback port."""

    def __init__(self, log_path: Path | None = None) -> None:
        self.port = free_port()
        self.endpoint_url = f"http://{LOOPBACK}:{self.port}"
        paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        env = {**os.environ, **LOCAL_CREDENTIALS, "PYTHONPATH": os.pathsep.join(paths)}
        command = [sys.executable, "-m", "local.moto_server", "-H", LOOPBACK, "-p", str(self.port)]
        self._child = ChildProcess(command, env=env, log_path=log_path)
        wait_for_port(self.port, self._child.process)

    def client(self) -> SQSClient:
        return sqs_client(self.endpoint_url)

    def stop(self) -> None:
        self._child.stop()


def local_client(service: str, endpoint_url: str, config: Config) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]  # typed by each caller
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=config.merge(Config(max_pool_connections=50)),
    )


def sqs_client(endpoint_url: str) -> SQSClient:
    client: SQSClient = local_client("sqs", endpoint_url, Config(retries={"mode": "standard", "max_attempts": 3}))
    return client


def dynamodb_client(endpoint_url: str) -> DynamoDBClient:
    client: DynamoDBClient = local_client("dynamodb", endpoint_url, Config())
    return client


def s3_client(endpoint_url: str) -> S3Client:
    """Path-style, as the function's client addresses a local endpoint (no bucket subdomain of an IP)."""
    client: S3Client = local_client("s3", endpoint_url, Config(s3={"addressing_style": "path"}))
    return client


def create_buckets(endpoint_url: str, plan: LocalPlan) -> dict[str, str]:
    """Create the template's S3 buckets; returns logical id -> bucket name (S3's rules: lower case, <= 63)."""
    client = s3_client(endpoint_url)
    names = {}
    for logical_id in plan.buckets:
        name = f"{plan.stack_name}-{logical_id}".lower()[:63].rstrip("-")
        client.create_bucket(Bucket=name)
        names[logical_id] = name
    return names


def create_tables(endpoint_url: str, plan: LocalPlan) -> dict[str, str]:
    """Create the template's DynamoDB tables; returns logical id -> table name."""
    client = dynamodb_client(endpoint_url)
    names = {}
    for spec in plan.tables.values():
        name = f"{plan.stack_name}-{spec.logical_id}"[:255]
        client.create_table(
            TableName=name,
            KeySchema=spec.key_schema,  # type: ignore[arg-type]
            AttributeDefinitions=spec.attribute_definitions,  # type: ignore[arg-type]
            BillingMode="PAY_PER_REQUEST",
        )
        if spec.ttl_attribute:
            client.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute}
            )
        names[spec.logical_id] = name
    return names


def _queue_name(stack_name: str, spec: QueueSpec) -> str:
    name = f"{stack_name}-{spec.logical_id}"[:75]
    return name + ".fifo" if spec.fifo else name


def create_queues(client: SQSClient, plan: LocalPlan) -> dict[str, Queue]:
    """Create the DLQ, then the source queue with its redrive policy, as the template says."""
    created: dict[str, Queue] = {}

    def create(spec: QueueSpec) -> Queue:
        attributes: dict[Any, str] = dict(spec.attributes)
        if spec.dead_letter_target is not None:
            target = created.get(spec.dead_letter_target) or create(plan.queues[spec.dead_letter_target])
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": target.arn, "maxReceiveCount": spec.max_receive_count}
            )
        url = client.create_queue(QueueName=_queue_name(plan.stack_name, spec), Attributes=attributes)["QueueUrl"]
        arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        created[spec.logical_id] = Queue(url, arn)
        return created[spec.logical_id]

    for spec in plan.queues.values():
        if spec.logical_id not in created:
            create(spec)
    return created
