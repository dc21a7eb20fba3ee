"""The queue and its dead-letter queue."""

from __future__ import annotations

import re

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra import scanner_skips
from infra.settings import StackSettings, StackSettingsError

# SQS queue names: up to 80 characters of letters, digits, hyphens and underscores (".fifo" included).
QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,75}")


class QueuesConstruct(Construct):
    """The source queue and its DLQ: both SSE-encrypted and TLS-only.

    The redrive policy moves a message to the DLQ after ``max_receive_count``
    receives (retries + 1). The consumer also quarantines poison messages into
    the same DLQ at once, with the reason in message attributes.

    The DLQ's redrive allow policy names the source queue: no other queue can make it its DLQ.
    The source queue's ARN is built from its name, since the queue refers to the DLQ (its
    redrive policy) and CloudFormation allows no cycle: the source queue has a physical name,
    ``<stack name>-<name>`` (".fifo" added for a FIFO queue).
    """

    def __init__(self, scope: Construct, construct_id: str, *, settings: StackSettings, name: str = "queue") -> None:
        super().__init__(scope, construct_id)
        fifo = settings.fifo or None
        dedup = settings.content_based_deduplication if settings.fifo else None
        stack = Stack.of(self)
        base = f"{stack.stack_name}-{name}"
        if not QUEUE_NAME.fullmatch(base):
            raise StackSettingsError(
                f"queue name {base!r} (stack name and consumer name) must be at most 75 letters, digits, '-' "
                "or '_': shorten the stage or consumer name"
            )
        self.queue_name = f"{base}.fifo" if settings.fifo else base
        source_arn = stack.format_arn(service="sqs", resource=self.queue_name)
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.seconds(settings.dlq_retention_period_seconds),
            max_message_size_bytes=settings.dlq_max_message_size_bytes,
            fifo=fifo,
            content_based_deduplication=dedup,
            redrive_allow_policy=sqs.RedriveAllowPolicy(
                redrive_permission=sqs.RedrivePermission.BY_QUEUE,
                source_queues=[sqs.Queue.from_queue_arn(self, "Source", source_arn)],
            ),
            # prod keeps what waits for a redrive; dev and local clean up with the stack.
            removal_policy=RemovalPolicy.RETAIN if settings.retain_data else RemovalPolicy.DESTROY,
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            queue_name=self.queue_name,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=Duration.seconds(settings.visibility_timeout_seconds),
            receive_message_wait_time=Duration.seconds(settings.receive_wait_time_seconds),
            retention_period=Duration.seconds(settings.retention_period_seconds),
            max_message_size_bytes=settings.max_message_size_bytes,
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letter_queue, max_receive_count=settings.max_receive_count
            ),
            fifo=fifo,
            content_based_deduplication=dedup,
            removal_policy=RemovalPolicy.RETAIN if settings.retain_data else RemovalPolicy.DESTROY,
        )
        for queue in (self.queue, self.dead_letter_queue):
            scanner_skips.skip(queue, "CKV_AWS_27", scanner_skips.SQS_SSE)
