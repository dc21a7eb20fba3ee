"""The stack: one per stage, composed of one construct per capability."""

from __future__ import annotations

from typing import Any

from aws_cdk import Annotations, CfnOutput, CfnRule, CfnRuleAssertion, Fn, Stack, Tags
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra import scanner_skips
from infra.consumer_function import ConsumerFunctionConstruct
from infra.idempotency_table import IdempotencyTableConstruct
from infra.monitoring import MonitoringConstruct
from infra.network import VpcPlacementConstruct
from infra.queues import QueuesConstruct
from infra.settings import StackSettings, arn_region

# Domains that deliver no mail (RFC 2606): an alarm subscription there reaches no one.
RESERVED_MAIL_DOMAINS = ("example.com", "example.net", "example.org")


def stack_name(stage: str) -> str:
    return f"SqsConsumer-{stage}"


class ConsumerStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, stage: str, settings: StackSettings, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, termination_protection=settings.termination_protection, **kwargs)
        self.settings = settings
        Tags.of(self).add("service", settings.service_name)
        Tags.of(self).add("stage", stage)
        self.queues = QueuesConstruct(self, "Queues", settings=settings)
        self.idempotency = (
            IdempotencyTableConstruct(self, "Idempotency", settings=settings) if settings.idempotency else None
        )
        self.network = (
            VpcPlacementConstruct(
                self, "Network", settings.vpc, secrets=bool(settings.secrets), dynamodb=settings.idempotency
            )
            if settings.vpc
            else None
        )
        self.consumer = ConsumerFunctionConstruct(
            self, "Consumer", settings=settings, queues=self.queues, idempotency=self.idempotency, network=self.network
        )
        self.monitoring = MonitoringConstruct(
            self, "Monitoring", settings=settings, queues=self.queues, consumer=self.consumer
        )
        self._allow_producers(settings)
        self._check_regions(settings)
        if settings.alarm_email and settings.alarm_email.rsplit("@", 1)[1].lower() in RESERVED_MAIL_DOMAINS:
            Annotations.of(self).add_warning_v2(
                "sqs-consumer:alarm-email",
                f"alarm_email {settings.alarm_email} is at a reserved domain that receives no mail: set the stage's "
                "alarm_email to your on-call address",
            )
        scanner_skips.apply(self, settings)

        outputs = {
            "QueueUrl": self.queues.queue.queue_url,
            "QueueArn": self.queues.queue.queue_arn,
            "DeadLetterQueueUrl": self.queues.dead_letter_queue.queue_url,
            "DeadLetterQueueArn": self.queues.dead_letter_queue.queue_arn,
            "FunctionName": self.consumer.function.function_name,
            "LogGroupName": self.consumer.log_group.log_group_name,
            "AlarmTopicArn": self.monitoring.topic.topic_arn,
        }
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)

    def _check_regions(self, settings: StackSettings) -> None:
        """The stack's region must be the VPC's and the alarm topic's.

        The stack is environment-agnostic (synth needs no account), so the region is known only at
        deploy: a template rule makes CloudFormation refuse the stack before it creates anything.
        """
        expected = {
            "the vpc's availability zones": settings.vpc.region if settings.vpc else None,
            "alarm_topic_arn": arn_region(settings.alarm_topic_arn) if settings.alarm_topic_arn else None,
        }
        assertions = [
            CfnRuleAssertion(
                assert_=Fn.condition_equals(Fn.ref("AWS::Region"), region),
                assert_description=f"{what} are in {region}: deploy this stage to {region}"
                if what.endswith("zones")
                else f"{what} is in {region}: deploy this stage to {region} (CloudWatch alarms publish only "
                "to a topic in their own region)",
            )
            for what, region in expected.items()
            if region is not None
        ]
        if assertions:
            CfnRule(self, "DeployedInTheStagesRegion", assertions=assertions)

    def _allow_producers(self, settings: StackSettings) -> None:
        """The queue policy for the stage's producers: IAM principals, and AWS services by source ARN."""
        queue = self.queues.queue
        for principal in settings.producer_principals:
            queue.add_to_resource_policy(
                iam.PolicyStatement(
                    principals=[iam.ArnPrincipal(principal)], actions=["sqs:SendMessage"], resources=[queue.queue_arn]
                )
            )
        # A service principal may send only on behalf of the named topics or rules (the confused
        # deputy: without the condition, any account's topic could publish to this queue).
        for service, sources in (("sns.amazonaws.com", settings.producer_sns_topics),
                                 ("events.amazonaws.com", settings.producer_event_rules)):  # fmt: skip
            if sources:
                queue.add_to_resource_policy(
                    iam.PolicyStatement(
                        principals=[iam.ServicePrincipal(service)],
                        actions=["sqs:SendMessage"],
                        resources=[queue.queue_arn],
                        conditions={"ArnEquals": {"aws:SourceArn": list(sources)}},
                    )
                )
