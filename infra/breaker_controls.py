"""What the function's circuit breakers act with (docs/design.md §9): its own mapping, its probes' schedules.

- An EventBridge Scheduler group of its own, where the function creates one-time ``at(...)`` schedules
  named ``probe-*`` (deleted by Scheduler once fired), and a role Scheduler assumes for them that may
  invoke this function (its alias under SnapStart) and nothing else.
- On the function's role, in a policy apart from its default one: ``UpdateEventSourceMapping`` on a
  mapping only when it invokes this function (the ``lambda:FunctionArn`` condition key; a resource
  naming the mapping's ARN would tie the role's policy to the mapping, which depends on the function,
  which depends on the role's policy: a circle CloudFormation refuses), ``ListEventSourceMappings`` to find
  the mapping's UUID (an action without resource types), ``CreateSchedule`` in the group, ``PassRole`` of
  the scheduler's role to Scheduler only, ``SendMessage`` to its own queue (a record on its last receive
  sent again) and ``BatchGetItem`` on the table (the breakers' states in one read).

The function's environment names the group and the role by their names, plain values (the function
builds the role's ARN from its own); the policies come after the function and its mapping, and name them.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, ArnFormat, Names, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from sqs_consumer.dependencies import PROBE_KEY

SCHEDULE_PREFIX = "probe-"
MAPPING_ACTIONS = ("lambda:UpdateEventSourceMapping",)
LOOKUP_ACTIONS = ("lambda:ListEventSourceMappings",)
SCHEDULE_ACTIONS = ("scheduler:CreateSchedule",)


class BreakerControlsConstruct(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.group_name = Names.unique_resource_name(self, max_length=64, separator="-")
        self.group = scheduler.CfnScheduleGroup(self, "ProbeGroup", name=self.group_name)
        # Named, so that the function's environment holds a plain value (the role's ARN is built from its own).
        self.scheduler_role_name = Names.unique_resource_name(self, max_length=64, separator="-") + "-probe"
        self.scheduler_role = iam.Role(
            self,
            "ProbeRole",
            role_name=self.scheduler_role_name[-64:],
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": stack.account}}
            ),
            description=f"EventBridge Scheduler invokes the consumer with a probe event ({PROBE_KEY})",
        )
        self.schedules_arn = stack.format_arn(
            service="scheduler", resource="schedule", resource_name=f"{self.group_name}/{SCHEDULE_PREFIX}*"
        )

    def grant(self, role: iam.IRole, function: lambda_.IFunction, target: lambda_.IFunction, queue: sqs.IQueue,
              table_arn: str) -> iam.Policy:  # fmt: skip
        """The function's permissions to act (module doc), and the scheduler role's to invoke ``target``."""
        self.scheduler_role.add_to_policy(
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[target.function_arn])
        )
        stack = Stack.of(self)
        mapping_arn = stack.format_arn(service="lambda", resource="event-source-mapping", resource_name="*",
                                       arn_format=ArnFormat.COLON_RESOURCE_NAME)  # fmt: skip
        policy = iam.Policy(self, "BreakerPolicy", roles=[role], statements=[
            iam.PolicyStatement(actions=list(MAPPING_ACTIONS), resources=[mapping_arn], conditions={
                "ArnLike": {"lambda:FunctionArn": [function.function_arn, f"{function.function_arn}:*"]}}),
            iam.PolicyStatement(actions=list(LOOKUP_ACTIONS), resources=["*"]),
            iam.PolicyStatement(actions=list(SCHEDULE_ACTIONS), resources=[self.schedules_arn]),
            iam.PolicyStatement(actions=["iam:PassRole"], resources=[self.scheduler_role.role_arn],
                                conditions={"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}),
            iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[queue.queue_arn]),
            iam.PolicyStatement(actions=["dynamodb:BatchGetItem"], resources=[table_arn]),
        ])  # fmt: skip
        Validations.of(policy).acknowledge(
            Acknowledgment(id="AwsSolutions::AwsSolutions-IAM5[Resource::*]", reason=(
                "lambda:ListEventSourceMappings has no resource type: the function looks up its own mapping's UUID "
                "once, by its name and its queue")),
            Acknowledgment(id=f"AwsSolutions::AwsSolutions-IAM5[Resource::{_NAG_MAPPINGS}]", reason=(
                "a mapping's UUID is known only once it exists, after the function: the lambda:FunctionArn "
                "condition holds UpdateEventSourceMapping to the mappings that invoke this function")),
            Acknowledgment(id=f"AwsSolutions::AwsSolutions-IAM5[Resource::{_NAG_ARN}:scheduler:{_NAG_PLACE}:schedule/"
                                f"{self.group_name}/{SCHEDULE_PREFIX}*]", reason=(
                "each probe is a one-time schedule named by its dependency and time, in the consumer's own group")),
        )  # fmt: skip
        return policy


# How cdk-nag writes the pseudo parameters of an ARN in a finding's id.
_NAG_ARN = "arn:<AWS::Partition>"
_NAG_PLACE = "<AWS::Region>:<AWS::AccountId>"
_NAG_MAPPINGS = f"{_NAG_ARN}:lambda:{_NAG_PLACE}:event-source-mapping:*"
