"""The AWS calls of a rehearsal, against LocalStack: deploy a template, fill and read the stack's queues.

A template over CloudFormation's 51,200-byte limit for a body goes through S3 (a bucket of the
rehearsal's own, then ``TemplateURL``), as ``cdk deploy`` does with its bootstrap bucket.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from infra.localstack import ACCOUNT, REGION

TEMPLATE_BODY_LIMIT = 51_200
TEMPLATE_BUCKET = "rehearsal-templates"
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
STACK_SECONDS = 300.0
# Messages read from a queue stay invisible for the rest of the rehearsal: each is counted once.
READ_VISIBILITY_SECONDS = 900
NO_CHANGE = "NO_CHANGE"


@dataclass(frozen=True)
class Clients:
    cloudformation: Any
    s3: Any
    sqs: Any


def boto_clients(url: str) -> Clients:
    session = boto3.Session(aws_access_key_id=ACCOUNT, aws_secret_access_key="test", region_name=REGION)  # noqa: S106
    config = Config(retries={"max_attempts": 3, "mode": "standard"}, s3={"addressing_style": "path"})
    return Clients(*(session.client(name, endpoint_url=url, config=config) for name in ("cloudformation", "s3", "sqs")))


def _fifo_fields() -> dict[str, str]:
    """A group of its own for each message: a read of one group is not held up by another's in flight."""
    return {"MessageGroupId": uuid.uuid4().hex, "MessageDeduplicationId": uuid.uuid4().hex}


class StackOperator:
    """One stack on LocalStack: create, update, its queues; and messages in and out of them."""

    def __init__(self, clients: Clients, stack_name: str) -> None:
        self.clients = clients
        self.stack_name = stack_name
        self._uploads = 0

    def _template_argument(self, template: Mapping[str, Any]) -> dict[str, str]:
        body = json.dumps(template)
        if len(body.encode()) <= TEMPLATE_BODY_LIMIT:
            return {"TemplateBody": body}
        s3 = self.clients.s3
        if self._uploads == 0:
            s3.create_bucket(Bucket=TEMPLATE_BUCKET)
        self._uploads += 1
        key = f"{self.stack_name}-{self._uploads}.json"
        s3.put_object(Bucket=TEMPLATE_BUCKET, Key=key, Body=body.encode())
        return {"TemplateURL": f"{s3.meta.endpoint_url}/{TEMPLATE_BUCKET}/{key}"}

    def create(self, template: Mapping[str, Any]) -> str:
        self.clients.cloudformation.create_stack(
            StackName=self.stack_name, Capabilities=CAPABILITIES, **self._template_argument(template)
        )
        return self._settled()

    def update(self, template: Mapping[str, Any]) -> str:
        try:
            self.clients.cloudformation.update_stack(
                StackName=self.stack_name, Capabilities=CAPABILITIES, **self._template_argument(template)
            )
        except ClientError as error:
            if "No updates are to be performed" in str(error):
                return NO_CHANGE
            raise
        return self._settled()

    def _settled(self) -> str:
        deadline = time.monotonic() + STACK_SECONDS
        while time.monotonic() < deadline:
            stack = self.clients.cloudformation.describe_stacks(StackName=self.stack_name)["Stacks"][0]
            if not stack["StackStatus"].endswith("_IN_PROGRESS"):
                return str(stack["StackStatus"])
            time.sleep(0.5)
        return "TIMED_OUT"

    def problems(self) -> list[str]:
        """The reasons of the stack's failed resource operations, oldest first."""
        events = self.clients.cloudformation.describe_stack_events(StackName=self.stack_name)["StackEvents"]
        return [f"{e['LogicalResourceId']} {e['ResourceStatus']}: {e.get('ResourceStatusReason', '')}"
                for e in reversed(events) if e["ResourceStatus"].endswith("_FAILED")]  # fmt: skip

    def queues(self) -> dict[str, str]:
        """The stack's queues now: logical id -> queue URL."""
        pages = self.clients.cloudformation.get_paginator("list_stack_resources").paginate(StackName=self.stack_name)
        return {r["LogicalResourceId"]: r["PhysicalResourceId"]
                for page in pages for r in page["StackResourceSummaries"]
                if r["ResourceType"] == "AWS::SQS::Queue" and r.get("PhysicalResourceId")}  # fmt: skip

    def fill(self, url: str, count: int) -> set[str]:
        """``count`` messages into the queue at ``url``; their bodies (unique) are returned."""
        fifo = url.endswith(".fifo")
        bodies = [json.dumps({"rehearsal": uuid.uuid4().hex, "index": index}) for index in range(count)]
        for start in range(0, count, 10):
            entries = [{"Id": str(index), "MessageBody": body, **(_fifo_fields() if fifo else {})}
                       for index, body in enumerate(bodies[start:start + 10])]  # fmt: skip
            answer = self.clients.sqs.send_message_batch(QueueUrl=url, Entries=entries)
            if answer.get("Failed"):
                raise RuntimeError(f"LocalStack refused messages for {url}: {answer['Failed']}")
        return set(bodies)

    def drain(self, url: str) -> set[str]:
        """The bodies of every message now visible in the queue at ``url`` (none if it is gone)."""
        bodies: set[str] = set()
        empty = 0
        while empty < 2:
            try:
                answer = self.clients.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                                          VisibilityTimeout=READ_VISIBILITY_SECONDS)  # fmt: skip
            except ClientError as error:
                if "NonExistentQueue" in str(error) or "does not exist" in str(error):
                    return bodies
                raise
            received = answer.get("Messages", [])
            empty = 0 if received else empty + 1
            bodies.update(message["Body"] for message in received)
        return bodies
