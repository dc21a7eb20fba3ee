"""``SqsConsumer``: one queue consumer on Lambda, reusable in any stack.

The shape users know from AWS Solutions Constructs' ``aws-sqs-lambda``: one construct, typed props.
It makes the queue and its DLQ, the idempotency table (or none), the function with its role, log
group and event source mapping, the alarms and dashboard, and the producers' queue policy, all from
one ``StackSettings`` validated by the synth-time rules (docs/design.md §5). A stack may hold several
(a FIFO queue for ordered work beside a standard one): each has its own queue, function, table and
alarms, and they share the stack's VPC placement and, if given, an alarm topic.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra import scanner_skips
from infra.consumer_function import HANDLER, ConsumerFunctionConstruct
from infra.idempotency_table import IdempotencyTableConstruct
from infra.monitoring import MonitoringConstruct
from infra.network import VpcPlacementConstruct
from infra.queues import QueuesConstruct
from infra.settings import StackSettings, StackSettingsError


@dataclass(frozen=True)
class SqsConsumerProps:
    """What one consumer is made of.

    ``settings`` carries every tunable and is validated when it is built (``StackSettings``
    refuses a rule-breaking value with a message naming it). ``name`` ends the queue's name
    (``<stack>-<name>``). ``handler`` is the entry point in the function's asset, ``code`` another
    asset than the project's. ``network`` is the stack's placement in the stage's VPC (required when
    ``settings.vpc`` is set, so consumers share one set of endpoints); ``alarm_topic`` a topic for
    the alarms instead of the one ``settings`` names or a new one.
    """

    settings: StackSettings
    name: str = "queue"
    handler: str = HANDLER
    code: lambda_.Code | None = None
    network: VpcPlacementConstruct | None = None
    alarm_topic: sns.ITopic | None = None

    def __post_init__(self) -> None:
        if (self.settings.vpc is None) != (self.network is None):
            raise StackSettingsError(
                f"consumer {self.name!r}: pass the stack's VpcPlacementConstruct as network exactly when "
                "settings.vpc is set"
            )


class SqsConsumer(Construct):
    """A queue, its DLQ, a Lambda function consuming it with partial batch responses, and its alarms."""

    def __init__(self, scope: Construct, construct_id: str, props: SqsConsumerProps) -> None:
        super().__init__(scope, construct_id)
        settings = props.settings
        self.props = props
        self.queues = QueuesConstruct(self, "Queues", settings=settings, name=props.name)
        self.idempotency = (
            IdempotencyTableConstruct(self, "Idempotency", settings=settings) if settings.idempotency else None
        )
        # "Default": the function's resources keep the logical ids they had before the construct
        # existed (ConsumerFunction1B019A9B is what `sam local invoke` names).
        self.consumer = ConsumerFunctionConstruct(
            self,
            "Default",
            settings=settings,
            queues=self.queues,
            idempotency=self.idempotency,
            network=props.network,
            handler=props.handler,
            code=props.code,
        )
        self.monitoring = MonitoringConstruct(
            self, "Monitoring", settings=settings, queues=self.queues, consumer=self.consumer, topic=props.alarm_topic
        )
        self._allow_producers(settings)
        scanner_skips.apply(self)

    # What a caller needs, by name.
    @property
    def queue(self) -> sqs.Queue:
        return self.queues.queue

    @property
    def dead_letter_queue(self) -> sqs.Queue:
        return self.queues.dead_letter_queue

    @property
    def function(self) -> lambda_.Function:
        return self.consumer.function

    @property
    def alias(self) -> lambda_.IFunction:
        """What the event source mapping invokes: the ``live`` alias with SnapStart, else the function."""
        return self.consumer.target

    @property
    def role(self) -> iam.Role:
        return self.consumer.role

    @property
    def log_group(self) -> logs.LogGroup:
        return self.consumer.log_group

    @property
    def table(self) -> dynamodb.TableV2 | None:
        return self.idempotency.table if self.idempotency is not None else None

    @property
    def alarms(self) -> dict[str, cw.Alarm]:
        return self.monitoring.alarms

    @property
    def topic(self) -> sns.ITopic:
        return self.monitoring.topic

    def _allow_producers(self, settings: StackSettings) -> None:
        """The queue policy for the producers: IAM principals, and AWS services by source ARN."""
        queue = self.queue
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
