"""``SqsConsumer``: one queue consumer on Lambda, reusable in any stack.

The shape users know from AWS Solutions Constructs' ``aws-sqs-lambda``: one construct, typed props.
It makes the queue and its DLQ, the idempotency table (or none), the function with its role, log
group and event source mapping, the alarms and dashboard, and the producers' queue policy, all from
one ``StackSettings`` validated by the synth-time rules (docs/design.md §5), and the payload bucket
producers offload large events to. A stack may hold several (a FIFO queue for ordered work beside a
standard one): each has its own queue, function, table and alarms, and they share the stack's VPC
placement, payload bucket and, if given, an alarm topic.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import CfnRule, CfnRuleAssertion, Fn, Stack, Token
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.consumer_function import ConsumerFunctionConstruct
from infra.function_environment import HANDLER
from infra.idempotency_table import IdempotencyTableConstruct
from infra.monitoring import MonitoringConstruct
from infra.network import VpcPlacementConstruct
from infra.payload_bucket import PayloadBucketConstruct
from infra.queues import QueuesConstruct
from infra.settings import StackSettings, StackSettingsError, arn_account, arn_region


@dataclass(frozen=True)
class SqsConsumerProps:
    """What one consumer is made of.

    ``settings`` carries every tunable and is validated when it is built (``StackSettings``
    refuses a rule-breaking value with a message naming it). ``name`` ends the queue's name
    (``<stack>-<name>``). ``handler`` is the entry point in the function's asset, ``code`` another
    asset than the project's. ``network`` is the stack's placement in the stage's VPC (required when
    ``settings.vpc`` is set, so consumers share one set of endpoints); ``alarm_topic`` a topic for
    the alarms instead of the one ``settings`` names or a new one; ``payload_bucket`` the stack's
    shared bucket (else the consumer makes its own).
    """

    settings: StackSettings
    name: str = "queue"
    handler: str = HANDLER
    code: lambda_.Code | None = None
    network: VpcPlacementConstruct | None = None
    alarm_topic: sns.ITopic | None = None
    payload_bucket: PayloadBucketConstruct | None = None

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
        self.payloads = props.payload_bucket or PayloadBucketConstruct(self, "PayloadBucket", settings=[settings])
        # "Default": the function's resources keep the logical ids they had before the construct
        # existed (ConsumerFunction1B019A9B is what `sam local invoke` names).
        self.consumer = ConsumerFunctionConstruct(
            self,
            "Default",
            settings=settings,
            queues=self.queues,
            idempotency=self.idempotency,
            network=props.network,
            payload_bucket=self.payloads,
            handler=props.handler,
            code=props.code,
        )
        self.monitoring = MonitoringConstruct(
            self, "Monitoring", settings=settings, queues=self.queues, consumer=self.consumer, topic=props.alarm_topic
        )
        self._allow_producers(settings)

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
    def payload_bucket(self) -> s3.Bucket:
        return self.payloads.bucket

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
        if settings.subscribe_sns_topics:
            self._subscribe(settings)

    def _subscribe(self, settings: StackSettings) -> None:
        """The queue's subscription to each topic: the stack's account's topics only, held by a template rule
        (the stack is environment-agnostic; another account's topic must be subscribed by its owner)."""
        for index, arn in enumerate(settings.producer_sns_topics):
            topic = sns.Topic.from_topic_arn(self, f"ProducerTopic{index}", arn)
            subscription = sns.Subscription(
                self,
                f"ProducerTopicSubscription{index}",
                topic=topic,
                endpoint=self.queue.queue_arn,
                protocol=sns.SubscriptionProtocol.SQS,
                raw_message_delivery=settings.sns_raw_message_delivery,
                region=arn_region(arn),
            )
            # What the topic publishes once the subscription exists needs the queue's policy to arrive.
            subscription.node.add_dependency(self.queue.node.find_child("Policy"))
        self._hold_topics_to_the_stacks_account(settings.producer_sns_topics)

    def _hold_topics_to_the_stacks_account(self, topics: tuple[str, ...]) -> None:
        """Refuse another account's topic: at synth when the stack's account is known, else at deploy."""
        account = Stack.of(self).account
        foreign = {arn: arn_account(arn) for arn in topics}
        if not Token.is_unresolved(account):
            wrong = [arn for arn, owner in foreign.items() if owner != account]
            if wrong:
                raise StackSettingsError(
                    f"subscribe_sns_topics: {', '.join(wrong)} is not in the stack's account {account}: "
                    "the topic's owner subscribes the queue (README: From SNS); list it without subscribe_sns_topics"
                )
            return
        CfnRule(self, "SubscribedTopicsInTheStacksAccount", assertions=[
            CfnRuleAssertion(
                assert_=Fn.condition_equals(Fn.ref("AWS::AccountId"), owner),
                assert_description=f"subscribe_sns_topics: the topic {arn} is in account {owner}: deploy this stage "
                "to that account, or let the topic's owner subscribe the queue and unset subscribe_sns_topics",
            )
            for arn, owner in foreign.items()
        ])  # fmt: skip
