"""The consumer function and its SQS event source mapping."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra import scanner_skips
from infra.breaker_controls import BreakerControlsConstruct
from infra.followups import Destination
from infra.function_environment import HANDLER, function_environment
from infra.idempotency_table import IdempotencyTableConstruct
from infra.network import ENI_ACTIONS, VpcPlacementConstruct
from infra.packaging import Target, build_function_asset
from infra.payload_bucket import PayloadBucketConstruct
from infra.queues import QueuesConstruct
from infra.settings import StackSettings, StackSettingsError, pascal_case
from sqs_consumer.settings import ConsumerSettings

# The latest Lambda Python runtime that the pinned dependencies ship wheels for.
RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.ARM_64
TARGET = Target(python_version="3.14", architecture="arm64")
# On the source queue: the mapping's polling and deletes, the consumer's retry backoff.
QUEUE_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility")
LIVE_ALIAS = "live"
WILDCARD = "AwsSolutions-IAM5[Resource::*]"
# On the idempotency table: conditional puts in TransactWriteItems (authorized as PutItem), reads of
# a refusing record, the completions in BatchWriteItem, and releases as conditional deletes in
# TransactWriteItems (authorized as DeleteItem).
TABLE_ACTIONS = ("dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:BatchWriteItem", "dynamodb:DeleteItem")
# The quarantine's sends to the DLQ (SendMessageBatch is authorized as SendMessage).
DLQ_ACTIONS = ("sqs:SendMessage",)
# Follow-up events to their declared destinations (SendMessageBatch is authorized as SendMessage).
FOLLOWUP_ACTIONS = ("sqs:SendMessage",)
# The Parameters utility's one call per secret (no DescribeSecret, no ListSecrets).
SECRET_ACTIONS = ("secretsmanager:GetSecretValue",)

_RETENTION = {
    1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS", 30: "ONE_MONTH",
    60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS", 150: "FIVE_MONTHS", 180: "SIX_MONTHS",
    365: "ONE_YEAR", 400: "THIRTEEN_MONTHS", 545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS", 1096: "THREE_YEARS",
    1827: "FIVE_YEARS", 2192: "SIX_YEARS", 2557: "SEVEN_YEARS", 2922: "EIGHT_YEARS", 3288: "NINE_YEARS",
    3653: "TEN_YEARS",
}  # fmt: skip


def target_of(runtime: lambda_.Runtime, architecture: lambda_.Architecture) -> Target:
    """The platform the asset is built for: a Python runtime's version on ``architecture``'s CPU."""
    version = runtime.name.removeprefix("python")
    if runtime.family != lambda_.RuntimeFamily.PYTHON or not version[:1].isdigit():
        raise StackSettingsError(
            f"runtime {runtime.name}: the consumer's asset is a Python package; give a lambda_.Runtime.PYTHON_3_*, "
            "or your own code= for another runtime"
        )
    return Target(python_version=version, architecture="arm64" if architecture.name == "arm64" else "x86_64")


class ConsumerFunctionConstruct(Construct):
    """The Lambda function, its log group and role, and the SQS event source mapping."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StackSettings,
        queues: QueuesConstruct,
        idempotency: IdempotencyTableConstruct | None,
        network: VpcPlacementConstruct | None,
        payload_bucket: PayloadBucketConstruct,
        handler: str = HANDLER,
        code: lambda_.Code | None = None,
        runtime: lambda_.Runtime = RUNTIME,
        architecture: lambda_.Architecture = ARCHITECTURE,
    ) -> None:
        super().__init__(scope, construct_id)
        self.runtime, self.architecture = runtime, architecture
        # The asset is built for the function's runtime and CPU, unless the caller brings its own code.
        self.asset_target = target_of(runtime, architecture) if code is None else None
        self.log_group = _function_log_group(self, settings)
        self.network = network
        self.role = _execution_role(self, self.log_group, queues, network, tracing=settings.tracing)
        # Each grant on the role (the VPC's endpoints, if any, allow the account's principals: network.py).
        _grant_secrets(self, self.role, settings)
        payload_bucket.grant_read(self.role)
        table = idempotency.table if idempotency is not None else None
        if table is not None:
            table.grant(self.role, *TABLE_ACTIONS)
        # The settings' rules hold breakers to a stage with idempotency: their state is in its table.
        self.breakers = BreakerControlsConstruct(self, "Breakers") if settings.breakers and table else None
        environment = function_environment(
            settings,
            queues.dead_letter_queue.queue_url,
            table.table_name if table is not None else None,
            payload_bucket.bucket.bucket_name,
            self.breakers,
        )
        self.function = self._function(settings, environment, handler, code)
        if settings.tracing:
            self._acknowledge_tracing_policy()
        self.target = self._live_target(settings)
        self.event_source_mapping = self._event_source_mapping(settings, queues)
        if self.breakers is not None and table is not None:
            self.breakers.grant(self.role, self.function, self.target, queues.queue, table.table_arn)
        _skip_scanner_findings(self.log_group, self.function, self.role, settings)

    def _acknowledge_tracing_policy(self) -> None:
        # With createNewPoliciesWithAddToRolePolicy, CDK writes active tracing's statement into a policy of
        # the function's own (inlinePolicyAddedToExecutionRole-N), outside the role's acknowledgment.
        reason = "X-Ray's PutTraceSegments and PutTelemetryRecords take no resource"
        for child in self.function.node.children:
            if isinstance(child, iam.Policy):
                Validations.of(child).acknowledge(Acknowledgment(id=f"AwsSolutions::{WILDCARD}", reason=reason))

    def _live_target(self, settings: StackSettings) -> lambda_.IFunction:
        """What the mapping invokes. SnapStart restores published versions only, and a gradual deploy shifts
        an alias's weights between two versions: either way the mapping invokes an alias of the current one."""
        if not (settings.snap_start or settings.gradual_deploy != "off"):
            return self.function
        return lambda_.Alias(
            self, "Live", alias_name=LIVE_ALIAS, version=self.function.current_version,
            description="The published version the queue's event source mapping invokes",
        )  # fmt: skip

    def send_followups_to(self, destinations: Mapping[str, Destination]) -> None:
        """The queues handlers may emit follow-up events to: their URLs in the function's settings
        (``FOLLOWUP_QUEUES``, a JSON object by name), and ``sqs:SendMessage`` on them and nothing else."""
        if not destinations:
            return
        urls = {name: destination.url for name, destination in sorted(destinations.items())}
        self.function.add_environment(ConsumerSettings.env_name("followup_queues"), Stack.of(self).to_json_string(urls))
        arns = sorted({destination.arn for destination in destinations.values()})
        self.role.add_to_policy(iam.PolicyStatement(actions=list(FOLLOWUP_ACTIONS), resources=arns))

    def _function(
        self, settings: StackSettings, environment: dict[str, str], handler: str, code: lambda_.Code | None
    ) -> lambda_.Function:
        network = self.network
        return lambda_.Function(
            self,
            "Function",
            runtime=self.runtime,
            architecture=self.architecture,
            handler=handler,
            code=code
            or lambda_.Code.from_asset(str(build_function_asset(self.asset_target or TARGET)), exclude=[".complete"]),
            memory_size=settings.function_memory_mb,
            timeout=Duration.seconds(settings.function_timeout_seconds),
            reserved_concurrent_executions=settings.reserved_concurrency,
            recursive_loop=lambda_.RecursiveLoop.TERMINATE,
            role=self.role,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=lambda_.ApplicationLogLevel[settings.log_level.replace("WARNING", "WARN")],
            # INFO keeps platform.report, the REPORT line the memory alarm reads Max Memory Used from.
            system_log_level_v2=lambda_.SystemLogLevel.INFO,
            environment=environment,
            vpc=network.vpc if network else None,
            vpc_subnets=network.subnets if network else None,
            security_groups=[network.security_group] if network else None,
            description="Consumes the SQS queue with partial batch responses",
            snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if settings.snap_start else None,
            # Active: Lambda samples invocations, records their segments and links them to the messages'
            # traces; CDK grants the role xray:PutTraceSegments and PutTelemetryRecords.
            tracing=lambda_.Tracing.ACTIVE if settings.tracing else None,
        )

    def _event_source_mapping(self, settings: StackSettings, queues: QueuesConstruct) -> lambda_.EventSourceMapping:
        """The mapping, made directly rather than through SqsEventSource, whose grant would add
        sqs:GetQueueUrl, which neither the mapping nor the function calls."""
        pollers = settings.provisioned_pollers
        return self.target.add_event_source_mapping(
            "SqsEventSource",
            event_source_arn=queues.queue.queue_arn,
            batch_size=settings.batch_size,
            max_batching_window=(
                Duration.seconds(settings.max_batching_window_seconds) if settings.max_batching_window_seconds else None
            ),
            report_batch_item_failures=True,
            max_concurrency=settings.mapping_max_concurrency,
            provisioned_poller_config=(
                lambda_.ProvisionedPollerConfig(minimum_pollers=pollers.minimum, maximum_pollers=pollers.maximum)
                if pollers
                else None
            ),
            metrics_config=lambda_.MetricsConfig(metrics=[lambda_.MetricType.EVENT_COUNT]),
        )

    def metric_mapping(self, name: str, period: Duration) -> cw.Metric:
        """One of the event source mapping's own metrics (its EventCount metrics are turned on)."""
        return cw.Metric(
            namespace="AWS/Lambda",
            metric_name=name,
            dimensions_map={"EventSourceMappingUUID": self.event_source_mapping.event_source_mapping_id},
            period=period,
            statistic="Sum",
            label=name,
        )


def _function_log_group(scope: Construct, settings: StackSettings) -> logs.LogGroup:
    """The function's log group: the stage's retention, kept on the stack's deletion where data is retained."""
    return logs.LogGroup(
        scope,
        "LogGroup",
        retention=logs.RetentionDays[_RETENTION[settings.log_retention_days]],
        removal_policy=RemovalPolicy.RETAIN if settings.retain_data else RemovalPolicy.DESTROY,
    )


def _execution_role(
    scope: Construct,
    log_group: logs.LogGroup,
    queues: QueuesConstruct,
    network: VpcPlacementConstruct | None,
    *,
    tracing: bool,
) -> iam.Role:
    """An explicit role with what the function and its mapping call, and nothing else: its own
    logs; on the queue, what the mapping polls and deletes with and the backoff's visibility
    changes; on the DLQ, the quarantine's sends."""
    role = iam.Role(scope, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    log_group.grant_write(role)
    queues.queue.grant(role, *QUEUE_ACTIONS)
    queues.dead_letter_queue.grant(role, *DLQ_ACTIONS)
    if network is not None:
        # CDK adds AWSLambdaVPCAccessExecutionRole only to a role it makes itself; this one needs
        # the ENI actions written out, or CreateFunction fails. Network interfaces are made by
        # Lambda at deploy and scale time with ids unknown here, and the Describe actions take no
        # resource: the statement names "*".
        role.add_to_policy(iam.PolicyStatement(actions=list(ENI_ACTIONS), resources=["*"]))
    wildcards = []
    if network is not None:
        wildcards.append("Lambda creates and deletes the function's network interfaces with the role's "
                         "permissions; their ids are unknown before Lambda makes them and the EC2 Describe "
                         "actions take no resource")  # fmt: skip
    if tracing:  # the statement CDK adds for active tracing
        wildcards.append("X-Ray's PutTraceSegments and PutTelemetryRecords take no resource")
    if wildcards:
        acknowledged = Acknowledgment(id=f"AwsSolutions::{WILDCARD}", reason="; ".join(wildcards))
        Validations.of(role).acknowledge(acknowledged)
    return role


def _grant_secrets(scope: Construct, role: iam.Role, settings: StackSettings) -> None:
    """GetSecretValue on the stage's secrets, and Decrypt on their customer-managed key if any."""
    # Secrets Manager ends a secret's ARN with six random characters: a name alone matches it as name-??????.
    secret_arns = [
        secretsmanager.Secret.from_secret_name_v2(scope, f"Secret{pascal_case(handle)}", name).secret_arn + "-??????"
        for handle, name in settings.secrets.items()
    ]
    if secret_arns:
        role.add_to_policy(iam.PolicyStatement(actions=list(SECRET_ACTIONS), resources=secret_arns))
    if settings.secrets_kms_key_arn is not None:
        # Secrets under a customer-managed key: Secrets Manager decrypts with the caller's
        # permission, and only its calls may use it.
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["kms:Decrypt"],
                resources=[settings.secrets_kms_key_arn],
                conditions={
                    "StringEquals": {"kms:ViaService": f"secretsmanager.{Stack.of(scope).region}.amazonaws.com"}
                },
            )
        )


def _skip_scanner_findings(
    log_group: logs.LogGroup, function: lambda_.Function, role: iam.Role, settings: StackSettings
) -> None:
    """checkov's findings on the log group, the function and the role that do not apply, with why."""
    scanner_skips.skip(log_group, "CKV_AWS_158", scanner_skips.LOG_GROUP_KMS)
    scanner_skips.skip(function, "CKV_AWS_116", scanner_skips.LAMBDA_DLQ)
    scanner_skips.skip(function, "CKV_AWS_173", scanner_skips.LAMBDA_ENV_KMS)
    if settings.vpc is None:
        scanner_skips.skip(function, "CKV_AWS_117", scanner_skips.LAMBDA_VPC)
    wildcard_writes = [reason for on, reason in ((settings.vpc is not None, scanner_skips.ENI_WRITE),
                                                 (settings.tracing, scanner_skips.XRAY_WRITE)) if on]  # fmt: skip
    if wildcard_writes:
        scanner_skips.skip(role.node.find_child("DefaultPolicy"), "CKV_AWS_111", "; ".join(wildcard_writes))
    if settings.reserved_concurrency is None:
        scanner_skips.skip(function, "CKV_AWS_115", scanner_skips.unbounded_concurrency(settings))
