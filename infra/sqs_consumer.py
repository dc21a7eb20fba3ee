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

from collections.abc import Mapping
from dataclasses import dataclass

import jsii
from aws_cdk import Acknowledgment, CfnRule, CfnRuleAssertion, Fn, Stack, Token, Validations
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct, IValidation

from infra.consumer_function import ARCHITECTURE, RUNTIME, ConsumerFunctionConstruct
from infra.followups import queue_destination, resolve
from infra.function_environment import HANDLER
from infra.idempotency_table import IdempotencyTableConstruct
from infra.monitoring import MonitoringConstruct
from infra.network import VpcPlacementConstruct
from infra.payload_bucket import PayloadBucketConstruct
from infra.queues import QueuesConstruct
from infra.settings import StackSettings, StackSettingsError, arn_account, arn_region

# What a gradual deploy of a new version shifts, and the alarms that roll it back: the function's errors
# (crashes, timeouts) and DLQ arrivals (quarantines: a version that refuses messages the old one took).
GRADUAL_CONFIGS = {
    "canary": codedeploy.LambdaDeploymentConfig.CANARY_10_PERCENT_5_MINUTES,
    "linear": codedeploy.LambdaDeploymentConfig.LINEAR_10_PERCENT_EVERY_1_MINUTE,
}
ROLLBACK_ALARMS = ("FunctionErrors", "DeadLetterQueueArrivals")
CODEDEPLOY_POLICY_FINDING = (
    "AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
    "AWSCodeDeployRoleForLambdaLimited]"
)


@jsii.implements(IValidation)
class _FollowUpsWired:
    """A consumer whose settings declare follow-up destinations must be given them (the synth fails otherwise:
    its handlers' emits would all fail)."""

    def __init__(self, consumer: SqsConsumer) -> None:
        self._consumer = consumer

    def validate(self) -> list[str]:
        if self._consumer.followups_wired:
            return []
        return [
            f"consumer {self._consumer.props.name!r} declares followup_destinations but was never given them: call "
            "SqsConsumer.send_followups_to(queues) once the queues they name exist (ConsumerStack does)"
        ]


@dataclass(frozen=True)
class SqsConsumerProps:
    """What one consumer is made of.

    ``settings`` carries every tunable and is validated when it is built (``StackSettings``
    refuses a rule-breaking value with a message naming it). ``name`` ends the queue's name
    (``<stack>-<name>``). ``handler`` is the entry point in the function's asset, ``code`` another
    asset than the project's; ``runtime`` and ``architecture`` the function's (the asset is built for
    them; Python 3.14 on arm64 by default). ``network`` is the stack's placement in the stage's VPC (required when
    ``settings.vpc`` is set, so consumers share one set of endpoints); ``alarm_topic`` a topic for
    the alarms instead of the one ``settings`` names or a new one; ``payload_bucket`` the stack's
    shared bucket (else the consumer makes its own).
    """

    settings: StackSettings
    name: str = "queue"
    handler: str = HANDLER
    code: lambda_.Code | None = None
    runtime: lambda_.Runtime = RUNTIME
    architecture: lambda_.Architecture = ARCHITECTURE
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
        self._refuse_a_taken_queue_name()
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
            runtime=props.runtime,
            architecture=props.architecture,
        )
        self.monitoring = MonitoringConstruct(
            self, "Monitoring", settings=settings, queues=self.queues, consumer=self.consumer, topic=props.alarm_topic
        )
        self.deployment_group = self._gradual_deploy(settings)
        self._allow_producers(settings)
        # Follow-up destinations are wired by send_followups_to, once the queues they name exist.
        self._followups_wired = not settings.followup_destinations
        self.node.add_validation(_FollowUpsWired(self))

    def send_followups_to(self, queues: Mapping[str, sqs.IQueue]) -> None:
        """Give the function its follow-up destinations (settings.followup_destinations): ARNs and URLs as they
        are, consumers' names looked up in ``queues``. Call it once every queue named there exists."""
        declared = self.props.settings.followup_destinations
        missing = sorted(target for target in declared.values() if queue_destination(target) is None
                         and target not in queues)  # fmt: skip
        if missing:
            raise StackSettingsError(
                f"consumer {self.props.name!r}: followup_destinations name {', '.join(missing)}: pass their queues"
            )
        self.consumer.send_followups_to(resolve(declared, queues))
        self._followups_wired = True

    def _gradual_deploy(self, settings: StackSettings) -> codedeploy.LambdaDeploymentGroup | None:
        """CodeDeploy shifts the ``live`` alias to a new version by ``settings.gradual_deploy``, and back when
        the function errors or quarantines meanwhile (a new version that fails the queue's messages)."""
        if settings.gradual_deploy == "off":
            return None
        alias = self.consumer.target
        assert isinstance(alias, lambda_.Alias)  # the function construct makes one for a gradual deploy
        group = codedeploy.LambdaDeploymentGroup(
            self, "GradualDeploy", alias=alias, deployment_config=GRADUAL_CONFIGS[settings.gradual_deploy],
            alarms=[self.alarms[name] for name in ROLLBACK_ALARMS],
            auto_rollback=codedeploy.AutoRollbackConfig(failed_deployment=True, stopped_deployment=True,
                                                        deployment_in_alarm=True),
        )  # fmt: skip
        Validations.of(group).acknowledge(Acknowledgment(id=CODEDEPLOY_POLICY_FINDING, reason=(
            "CodeDeploy's service role for Lambda: AWS's managed policy, scoped to shifting aliases and reading the "
            "deployment's alarms, and kept current by AWS as CodeDeploy's own calls change"
        )))  # fmt: skip
        return group

    def _refuse_a_taken_queue_name(self) -> None:
        """Two consumers of a stack named alike would share one queue name: CloudFormation would fail the
        second create at deploy; refused here, at synth, naming both."""
        name = self.queues.queue_name
        for other in Stack.of(self).node.find_all():
            if isinstance(other, SqsConsumer) and other is not self and other.queues.queue_name == name:
                raise StackSettingsError(
                    f"consumers {other.node.path} and {self.node.path} would both make the queue {name!r}: give "
                    "each a different name in SqsConsumerProps (name='orders')"
                )

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

    @property
    def followups_wired(self) -> bool:
        return self._followups_wired

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
