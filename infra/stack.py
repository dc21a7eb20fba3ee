"""The stack: one per stage, composed of one construct per capability."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.consumer_function import ConsumerFunctionConstruct
from infra.idempotency_table import IdempotencyTableConstruct
from infra.monitoring import MonitoringConstruct
from infra.queues import QueuesConstruct
from infra.settings import StackSettings


def stack_name(stage: str) -> str:
    return f"SqsConsumer-{stage}"


class ConsumerStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, settings: StackSettings, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.settings = settings
        self.queues = QueuesConstruct(self, "Queues", settings=settings)
        self.idempotency = (
            IdempotencyTableConstruct(self, "Idempotency", settings=settings) if settings.idempotency else None
        )
        self.consumer = ConsumerFunctionConstruct(
            self, "Consumer", settings=settings, queues=self.queues, idempotency=self.idempotency
        )
        self.monitoring = MonitoringConstruct(
            self, "Monitoring", settings=settings, queues=self.queues, consumer=self.consumer
        )
        # Upstream services named in the stage's settings may send to the queue.
        for principal in settings.producer_principals:
            self.queues.queue.grant_send_messages(iam.ArnPrincipal(principal))

        outputs = {
            "QueueUrl": self.queues.queue.queue_url,
            "QueueArn": self.queues.queue.queue_arn,
            "DeadLetterQueueUrl": self.queues.dead_letter_queue.queue_url,
            "DeadLetterQueueArn": self.queues.dead_letter_queue.queue_arn,
            "FunctionName": self.consumer.function.function_name,
            "AlarmTopicArn": self.monitoring.topic.topic_arn,
        }
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)
