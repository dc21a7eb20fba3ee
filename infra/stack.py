"""The stack: one per stage, the composition of its consumers (``SqsConsumer``)."""

from __future__ import annotations

from typing import Any

from aws_cdk import Annotations, CfnOutput, CfnRule, CfnRuleAssertion, Fn, Stack, Tags, Token
from constructs import Construct

from infra.network import VpcPlacementConstruct
from infra.payload_bucket import PayloadBucketConstruct
from infra.settings import PRODUCTION_STAGE, StackSettings, StackSettingsError, arn_region, pascal_case
from infra.sqs_consumer import SqsConsumer, SqsConsumerProps

# Domains that deliver no mail (RFC 2606): an alarm subscription there reaches no one.
RESERVED_MAIL_DOMAINS = ("example.com", "example.net", "example.org")


def stack_name(stage: str) -> str:
    return f"SqsConsumer-{stage}"


class ConsumerStack(Stack):
    """The stage's consumer, and any further ones the stage declares under ``consumers``.

    They share the stage's VPC placement (one set of endpoints), the payload bucket (expiring objects
    after the longest retention among them) and the first consumer's alarm topic.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: str,
        settings: StackSettings,
        consumers: dict[str, StackSettings] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, termination_protection=settings.termination_protection, **kwargs)
        self.settings = settings
        Tags.of(self).add("service", settings.service_name)
        Tags.of(self).add("stage", stage)
        everyone = [settings, *(consumers or {}).values()]
        self.network = (
            VpcPlacementConstruct(
                self,
                "Network",
                settings.vpc,
                secrets=any(s.secrets for s in everyone),
                dynamodb=any(s.idempotency for s in everyone),
            )
            if settings.vpc
            else None
        )
        self.payloads = PayloadBucketConstruct(self, "Payloads", settings=everyone)
        self.consumer = SqsConsumer(
            self, "Consumer", SqsConsumerProps(settings=settings, network=self.network, payload_bucket=self.payloads)
        )
        self.consumers = {"": self.consumer}
        for name, extra in (consumers or {}).items():
            self.consumers[name] = SqsConsumer(
                self,
                f"Consumer{pascal_case(name)}",
                SqsConsumerProps(
                    settings=extra,
                    name=name,
                    network=self.network,
                    alarm_topic=self.consumer.topic,
                    payload_bucket=self.payloads,
                ),
            )
        self._send_followups()
        self._check_regions(settings)
        self._hold_to_the_stages_account(settings, stage)
        self._warn_on_an_unreachable_alarm_email(settings)
        self._outputs()

    def _hold_to_the_stages_account(self, settings: StackSettings, stage: str) -> None:
        """A stage deploys to its own account only: refused at synth when the stack's account is known and
        another, else by a template rule before CloudFormation makes anything. A production stage that
        names none warns (and fails a strict synth)."""
        if settings.account is None:
            if settings.termination_protection or stage == PRODUCTION_STAGE:
                Annotations.of(self).add_warning_v2(
                    "sqs-consumer:account",
                    f"stage {stage} names no account: set its account (12 digits) so that a deploy with another "
                    "account's credentials is refused",
                )
            return
        if not Token.is_unresolved(self.account) and self.account != settings.account:
            raise StackSettingsError(
                f"stage {stage} deploys to account {settings.account}, not {self.account}: use that account's "
                "credentials, or change the stage's account"
            )
        CfnRule(self, "DeployedToTheStagesAccount", assertions=[CfnRuleAssertion(
            assert_=Fn.condition_equals(Fn.ref("AWS::AccountId"), settings.account),
            assert_description=f"stage {stage} deploys to account {settings.account} only: use that account's "
            "credentials, or change the stage's account in cdk.json",
        )])  # fmt: skip

    def _send_followups(self) -> None:
        """Each consumer's follow-up destinations, once every consumer's queue exists (one may name another)."""
        queues = {name: consumer.queue for name, consumer in self.consumers.items() if name}
        for consumer in self.consumers.values():
            consumer.send_followups_to(queues)

    def _warn_on_an_unreachable_alarm_email(self, settings: StackSettings) -> None:
        if settings.alarm_email and settings.alarm_email.rsplit("@", 1)[1].lower() in RESERVED_MAIL_DOMAINS:
            Annotations.of(self).add_warning_v2(
                "sqs-consumer:alarm-email",
                f"alarm_email {settings.alarm_email} is at a reserved domain that receives no mail: set the stage's "
                "alarm_email to your on-call address",
            )

    def _outputs(self) -> None:
        """What producers and operators look up after a deploy: each consumer's names, the alarm topic, the bucket."""
        for name, consumer in self.consumers.items():
            outputs = {
                "QueueUrl": consumer.queue.queue_url,
                "QueueArn": consumer.queue.queue_arn,
                "DeadLetterQueueUrl": consumer.dead_letter_queue.queue_url,
                "DeadLetterQueueArn": consumer.dead_letter_queue.queue_arn,
                "FunctionName": consumer.function.function_name,
                "LogGroupName": consumer.log_group.log_group_name,
            }
            if consumer.idempotency is not None:  # where the breakers' states are too (sqs-breakers --table)
                outputs["IdempotencyTableName"] = consumer.idempotency.table.table_name
            for output, value in outputs.items():
                CfnOutput(self, f"{pascal_case(name)}{output}", value=value)
        CfnOutput(self, "AlarmTopicArn", value=self.consumer.topic.topic_arn)
        # Producers' extended clients offload to this bucket (README: Large payloads).
        CfnOutput(self, "PayloadBucketName", value=self.payloads.bucket.bucket_name)

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
