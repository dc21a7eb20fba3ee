"""The queue and its dead-letter queue."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.settings import StackSettings


class QueuesConstruct(Construct):
    """The source queue and its DLQ: both SSE-encrypted and TLS-only.

    The redrive policy moves a message to the DLQ after ``max_receive_count``
    receives (retries + 1). The consumer also quarantines poison messages into
    the same DLQ at once, with the reason in message attributes.
    """

    def __init__(self, scope: Construct, construct_id: str, *, settings: StackSettings) -> None:
        super().__init__(scope, construct_id)
        fifo = settings.fifo or None
        dedup = settings.content_based_deduplication if settings.fifo else None
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.seconds(settings.dlq_retention_period_seconds),
            max_message_size_bytes=settings.dlq_max_message_size_bytes,
            fifo=fifo,
            content_based_deduplication=dedup,
            # prod keeps what waits for a redrive; dev and local clean up with the stack.
            removal_policy=RemovalPolicy.RETAIN if settings.retain_data else RemovalPolicy.DESTROY,
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
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
