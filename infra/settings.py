"""Stack settings: one typed object per stage, read from cdk.json context.

Defaults mirror the seed worker (SQS_MAX_MESSAGES=10, SQS_VISIBILITY_TIMEOUT=300,
SQS_WAIT_TIME_SECONDS=20), but for its WORKER_MAX_RETRIES=3: 4 retries, so the queue's
maxReceiveCount is 5, the least AWS recommends for a queue Lambda reads (a receive lost to a
throttled invocation counts too). The AWS rules of docs/design.md §5
are checked here, so a wrong setting fails `cdk synth` with a message that names
the setting and the bound.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from sqs_consumer.payload_store import PARSE_BYTES_PER_PAYLOAD_BYTE, RUNTIME_MB, max_payload_for, memory_needed_mb
from sqs_consumer.quarantine import DLQ_ROOM_BYTES
from sqs_consumer.retry import MAX_BACKOFF_SECONDS, Backoff
from sqs_consumer.settings import ConsumerSettings, OrdersApiSettings, RateLimitSetting
from sqs_consumer.sqs_limits import DEFAULT_MAX_MESSAGE_BYTES, LARGEST_MAX_MESSAGE_BYTES

DEFAULT_STAGE = "dev"
# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                      3288, 3653)  # fmt: skip


class StackSettingsError(ValueError):
    """A stage's settings break an AWS rule; the message says what to change."""


_ARN = r"arn:aws(-cn|-us-gov|-iso|-iso-[a-z]|-eusc)?"


def _matching(pattern: str, what: str, example: str) -> AfterValidator:
    """A check that the string matches ``pattern``; its error names what is expected, with an example."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"{value!r} is not {what} (for example {example})")
        return value

    return AfterValidator(check)


_IAM_PATH = r"[\w+=,.@/-]+"
IamPrincipalArn = Annotated[str, _matching(rf"{_ARN}:iam::\d{{12}}:(root|role/{_IAM_PATH}|user/{_IAM_PATH})",
                                      "an IAM role, user or account ARN",
                       "arn:aws:iam::123456789012:role/orders-service")]  # fmt: skip
SnsTopicArn = Annotated[str, _matching(rf"{_ARN}:sns:[a-z0-9-]+:\d{{12}}:[\w-]{{1,256}}(\.fifo)?", "an SNS topic ARN",
                   "arn:aws:sns:eu-west-1:123456789012:orders")]  # fmt: skip
EventRuleArn = Annotated[str, _matching(rf"{_ARN}:events:[a-z0-9-]+:\d{{12}}:rule/[\w./-]+", "an EventBridge rule ARN",
                    "arn:aws:events:eu-west-1:123456789012:rule/orders-to-queue")]  # fmt: skip
KmsKeyArn = Annotated[str, _matching(rf"{_ARN}:kms:[a-z0-9-]+:\d{{12}}:key/[\w-]+", "a KMS key ARN",
                 "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab")]  # fmt: skip
SecurityGroupId = Annotated[str, Field(pattern=r"^sg-[0-9a-f]{8,17}$")]
# Each poller of the mapping's provisioned mode drives up to this many concurrent invocations.
INVOKES_PER_POLLER = 10


def pascal_case(name: str) -> str:
    """``orders-eu`` -> ``OrdersEu``: a consumer's or secret's name in construct ids and output names."""
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name) if part)


def arn_region(arn: str) -> str:
    """The region field of an ARN (``arn:partition:service:region:account:resource``)."""
    return arn.split(":")[3]


def arn_account(arn: str) -> str:
    """The account field of an ARN."""
    return arn.split(":")[4]


def zone_region(zone: str) -> str:
    """The region of an availability zone name: ``eu-west-1a`` -> ``eu-west-1``; a Local Zone's is its
    parent region's: ``us-west-2-lax-1a`` -> ``us-west-2``."""
    match = re.match(r"[a-z]{2}(?:-[a-z]+)+-\d+", zone)
    return match.group(0) if match else zone.rstrip("abcdefghijklmnopqrstuvwxyz")


# Ids by AWS's patterns, so a typo fails the synth rather than the deploy. Zones: us-east-1a, and
# Local Zones such as us-west-2-lax-1a.
AvailabilityZone = Annotated[str, _matching(r"[a-z]{2}(?:-[a-z]+)+-\d+(?:[a-z]|-[a-z]+-\d+[a-z])",
                                            "an availability zone name", "eu-west-1a")]  # fmt: skip
VpcId = Annotated[str, _matching(r"vpc-[0-9a-f]{8,17}", "a VPC id", "vpc-0123456789abcdef0")]
SubnetId = Annotated[str, _matching(r"subnet-[0-9a-f]{8,17}", "a subnet id", "subnet-0123456789abcdef0")]
RouteTableId = Annotated[str, _matching(r"rtb-[0-9a-f]{8,17}", "a route table id", "rtb-0123456789abcdef0")]

SecretHandle = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
SecretName = Annotated[str, Field(pattern=r"^[A-Za-z0-9/_+=.@-]{1,512}$")]


ConsumerName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,19}$")]
# What one stack shares among its consumers, set once for the stage.
STAGE_WIDE = ("vpc", "alarm_email", "alarm_topic_arn", "termination_protection", "retain_data", "consumers", "account")


class ProvisionedPollers(BaseModel):
    """The mapping's provisioned mode: 2-200 minimum and 2-10,000 maximum pollers (the Lambda API
    reference's ProvisionedPollerConfig; older guide pages said 2,000)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    minimum: int = Field(default=2, ge=2, le=200)
    maximum: int = Field(default=200, ge=2, le=10_000)

    @property
    def max_invocations(self) -> int:
        """The most concurrent invocations the pollers can drive: 10 per poller."""
        return INVOKES_PER_POLLER * self.maximum


class VpcPlacement(BaseModel):
    """Private subnets of an existing VPC, by id: synth stays offline (no lookup)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    vpc_id: VpcId
    # At least one of each, checked below: a length check here would add a second error for one bad id.
    availability_zones: tuple[AvailabilityZone, ...]
    private_subnet_ids: tuple[SubnetId, ...]
    private_subnet_route_table_ids: tuple[RouteTableId, ...]
    # "endpoints": the stack makes an SQS (and Secrets Manager) interface endpoint and a DynamoDB
    # gateway endpoint in this VPC; only one stack per VPC may (private DNS and routes collide).
    # "existing_endpoints": the VPC has them already (shared VPCs, a second stage in the same VPC):
    # the stack makes none and lets the function reach their security groups.
    # "nat": the subnets already route to the internet through a NAT; no endpoint is made.
    egress: Literal["endpoints", "existing_endpoints", "nat"] = "endpoints"
    # existing_endpoints: the security groups of the VPC's SQS (and Secrets Manager) interface endpoints.
    endpoint_security_group_ids: tuple[SecurityGroupId, ...] = ()
    # The region's DynamoDB prefix list (pl-...), the gateway endpoint's destination: HTTPS out is
    # opened to it alone. Find it with `aws ec2 describe-managed-prefix-lists --filters
    # Name=prefix-list-name,Values=com.amazonaws.<region>.dynamodb --query 'PrefixLists[].PrefixListId'`.
    dynamodb_prefix_list_id: str | None = Field(default=None, pattern=r"^pl-[0-9a-f]{8,17}$")
    # The region's S3 prefix list, for the function's reads of the payload bucket through a gateway
    # endpoint (com.amazonaws.<region>.s3): needed in every mode but nat, since every stage has the bucket.
    s3_prefix_list_id: str | None = Field(default=None, pattern=r"^pl-[0-9a-f]{8,17}$")

    @property
    def region(self) -> str:
        return zone_region(self.availability_zones[0])

    @property
    def creates_endpoints(self) -> bool:
        return self.egress == "endpoints"

    @model_validator(mode="after")
    def _one_per_zone(self) -> VpcPlacement:
        zones, subnets = len(self.availability_zones), len(self.private_subnet_ids)
        tables = len(self.private_subnet_route_table_ids)
        if not zones:
            raise ValueError("vpc needs at least one availability zone, with its private subnet and route table")
        problems = []
        if not zones == subnets == tables:
            problems.append(
                f"vpc needs one private subnet and one route table per availability zone (got {zones} zone(s), "
                f"{subnets} subnet(s), {tables} route table(s))"
            )
        for name, values in (("availability_zones", self.availability_zones),
                             ("private_subnet_ids", self.private_subnet_ids)):  # fmt: skip
            repeated = sorted({value for value in values if values.count(value) > 1})
            if repeated:
                problems.append(f"vpc.{name} lists {', '.join(repeated)} more than once: one subnet per zone")
        regions = sorted({zone_region(zone) for zone in self.availability_zones})
        if len(regions) > 1:
            problems.append(f"vpc.availability_zones span regions {', '.join(regions)}: a VPC lives in one region")
        if self.egress == "existing_endpoints" and not self.endpoint_security_group_ids:
            problems.append(
                "vpc.egress existing_endpoints needs vpc.endpoint_security_group_ids: the security groups of "
                "the VPC's SQS (and Secrets Manager) interface endpoints"
            )
        if self.egress != "nat" and self.s3_prefix_list_id is None:
            problems.append(
                f"vpc.s3_prefix_list_id is needed with egress {self.egress}: the function reads the payload bucket "
                "through an S3 gateway endpoint, and its HTTPS egress goes to the region's S3 prefix list (aws ec2 "
                f"describe-managed-prefix-lists --filters Name=prefix-list-name,Values=com.amazonaws.{self.region}.s3)"
            )
        if self.s3_prefix_list_id is not None and self.s3_prefix_list_id == self.dynamodb_prefix_list_id:
            problems.append(
                f"vpc.s3_prefix_list_id and vpc.dynamodb_prefix_list_id are both {self.s3_prefix_list_id}: each "
                "service has its own prefix list in a region"
            )
        if self.egress != "existing_endpoints" and self.endpoint_security_group_ids:
            problems.append(f"vpc.endpoint_security_group_ids applies to egress existing_endpoints, not {self.egress}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


# The stage settings by concern. StackSettings composes them, flat as cdk.json writes them; its fields
# keep this order (pydantic takes a base's fields before those of the bases listed before it).
class NameSettings(BaseModel):
    """Names: the service and its metrics."""

    # Names.
    service_name: str = Field(
        default="sqs-consumer",
        pattern=r"^[a-z][a-z0-9-]{0,39}$",
        description="The service's name: its function, logs, metrics and dashboard.",
    )
    metrics_namespace: str = Field(
        default=ConsumerSettings.model_fields["metrics_namespace"].default,
        min_length=1,
        description="The function's metrics namespace; a stage's is this, `/`, and the stage's name.",
    )
    account: str | None = Field(
        default=None,
        pattern=r"^\d{12}$",
        description="The AWS account the stage deploys to: a deploy to another is refused before anything is made "
        "(unset: any account; a production stage warns).",
    )


class QueueSettings(BaseModel):
    """The queue and its DLQ (SQS); checked by _queue_violations."""

    # The queue and its DLQ (seed: SQS_VISIBILITY_TIMEOUT, SQS_WAIT_TIME_SECONDS).
    visibility_timeout_seconds: int = Field(
        default=300,
        ge=0,
        le=43_200,
        description="How long a received message stays hidden (seed: "
        "SQS_VISIBILITY_TIMEOUT); at least 6 x function_timeout_seconds + "
        "max_batching_window_seconds.",
    )
    receive_wait_time_seconds: int = Field(
        default=20, ge=0, le=20, description="The queue's long poll (seed: SQS_WAIT_TIME_SECONDS)."
    )
    retention_period_seconds: int = Field(
        default=4 * 86_400, ge=60, le=14 * 86_400, description="How long the queue keeps a message."
    )
    dlq_retention_period_seconds: int = Field(
        default=14 * 86_400,
        ge=60,
        le=14 * 86_400,
        description="How long the DLQ keeps a message: more than the queue "
        "(a standard queue's DLQ keeps the original enqueue time).",
    )
    max_message_size_bytes: int = Field(
        default=DEFAULT_MAX_MESSAGE_BYTES,
        ge=1_024,
        le=LARGEST_MAX_MESSAGE_BYTES,
        description="SQS's MaximumMessageSize of the queue.",
    )
    dlq_max_message_size_bytes: int = Field(
        default=LARGEST_MAX_MESSAGE_BYTES,
        ge=1_024,
        le=LARGEST_MAX_MESSAGE_BYTES,
        description="The DLQ's MaximumMessageSize: the largest message plus its "
        "quarantine reason (DLQ_ROOM_BYTES more), so a queue at SQS's 1 MiB has "
        "no DLQ large enough.",
    )
    max_retries: int = Field(
        default=4,
        ge=0,
        le=999,
        description="Retries before the redrive policy moves a message to the DLQ (seed: "
        "WORKER_MAX_RETRIES, 3); the queue's maxReceiveCount is this + 1: 5 by default, the least AWS "
        "recommends for Lambda's SQS consumers.",
    )
    fifo: bool = Field(default=False, description="A FIFO queue (and DLQ): order kept within each message group.")
    content_based_deduplication: bool = Field(
        default=False,
        description="FIFO only: SQS deduplicates by the body's hash when a producer sends no deduplication id.",
    )


class MappingSettings(BaseModel):
    """The event source mapping: batches and concurrency; checked by _concurrency_violations."""

    # The event source mapping (seed: SQS_MAX_MESSAGES, WORKER_POLL_INTERVAL, replicas).
    batch_size: int = Field(
        default=10,
        ge=1,
        le=10_000,
        description="Records per invocation (seed: SQS_MAX_MESSAGES); over 10 needs a batching "
        "window, a FIFO queue allows 10.",
    )
    max_batching_window_seconds: int = Field(
        default=0,
        ge=0,
        le=300,
        description="How long the mapping gathers records before it invokes "
        "(seed: WORKER_POLL_INTERVAL); 0 on a FIFO queue.",
    )
    max_concurrency: int = Field(
        default=3,
        ge=2,
        le=1_000,
        description="At most this many concurrent invocations from the mapping (seed: "
        "replicas); not in provisioned mode.",
    )
    provisioned_pollers: ProvisionedPollers | None = Field(
        default=None,
        description="Provisioned mode: `{minimum, maximum}` "
        "event pollers kept ready (billed per poller), instead "
        "of max_concurrency.",
    )


class FunctionSettings(BaseModel):
    """The function: timeouts, memory, retries, logs; checked by _function_violations."""

    # The function.
    reserved_concurrency: int | None = Field(
        default=None,
        ge=1,
        description="Executions reserved for the function; unset, it draws on the account's unreserved pool.",
    )
    function_timeout_seconds: int = Field(default=30, ge=1, le=900, description="The function's timeout.")
    function_memory_mb: int = Field(default=256, ge=128, le=10_240, description="The function's memory.")
    time_reserve_seconds: float = Field(
        default=5,
        ge=0,
        description="No record starts once less than this remains before the "
        "function's timeout (seed: WORKER_SHUTDOWN_TIMEOUT).",
    )
    max_concurrent_records: int = Field(
        default=10, ge=1, le=10_000, description=ConsumerSettings.model_fields["max_concurrent_records"].description
    )
    # Retry with backoff: a failed record returns after base x 2^(receives - 1), jittered, capped.
    retry_backoff_base_seconds: float = Field(
        default=10,
        ge=0,
        le=MAX_BACKOFF_SECONDS,
        description="A failed record returns after base x 2^(receives - 1) "
        "s, jittered, capped; 0 leaves retries to the visibility timeout.",
    )
    retry_backoff_cap_seconds: float = Field(
        default=300, gt=0, le=MAX_BACKOFF_SECONDS, description="The longest backoff before a retry."
    )
    snap_start: bool = Field(
        default=False,
        description="SnapStart: a snapshot of the initialized function per "
        "published version; the mapping invokes its `live` alias "
        "(docs/decisions/023-snapstart.md).",
    )
    gradual_deploy: Literal["off", "canary", "linear"] = Field(
        default="off",
        description="How a new function version takes the queue's traffic: `canary` (10% for 5 minutes, then "
        "all) or `linear` (10% more each minute) by CodeDeploy, rolled back when the function errors or "
        "quarantines (its alarms); the mapping then invokes the `live` alias. `off`: at once.",
    )
    idempotency: bool = Field(
        default=True, description="Exactly-once effects per event_id, remembered in a DynamoDB table."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="The function's log level."
    )
    tracing: bool = Field(
        default=False,
        description="X-Ray active tracing, and a subsegment per handler call sent without the X-Ray SDK "
        "(docs/decisions/071-tracing-without-the-sdk.md).",
    )
    log_retention_days: int = Field(
        default=30, description="How long CloudWatch Logs keeps the function's logs: one of the periods it accepts."
    )


class MonitoringSettings(BaseModel):
    """Alarms and where they go; checked by _alarm_violations."""

    # Monitoring.
    oldest_message_age_alarm_seconds: int = Field(
        default=600, ge=60, description="The alarm on the queue's oldest message fires past this age."
    )
    alarm_email: str | None = Field(
        default=None,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        description="An email address subscribed to the stack's alarm topic.",
    )
    alarm_topic_arn: SnsTopicArn | None = Field(
        default=None,
        description="An existing SNS topic for the alarms instead of the stack's own, in the stack's region (its "
        "policy must let cloudwatch.amazonaws.com publish; see docs/runbook.md#an-existing-alarm-topic).",
    )


class ProducerSettings(BaseModel):
    """Who may send, and the payloads they offload; checked by _producer_violations."""

    # Producers: IAM roles or users (or accounts) that may send, and AWS services by their source.
    producer_principals: tuple[IamPrincipalArn, ...] = Field(
        default=(), description="IAM roles, users or accounts that may send, and put payloads in the payload bucket."
    )
    producer_sns_topics: tuple[SnsTopicArn, ...] = Field(
        default=(), description="SNS topics that may send (`aws:SourceArn`)."
    )
    producer_event_rules: tuple[EventRuleArn, ...] = Field(
        default=(), description="EventBridge rules that may send (`aws:SourceArn`)."
    )
    max_payload_size_bytes: int = Field(
        default=ConsumerSettings.model_fields["max_payload_bytes"].default,
        ge=LARGEST_MAX_MESSAGE_BYTES,
        le=2**31,
        description="The largest offloaded payload the function fetches (MAX_PAYLOAD_BYTES); a larger one is "
        "quarantined.",
    )
    subscribe_sns_topics: bool = Field(
        default=False,
        description="The stack subscribes the queue to each of "
        "producer_sns_topics (topics of the stack's own account only: another "
        "account's topic is subscribed by its owner).",
    )
    sns_raw_message_delivery: bool = Field(
        default=False,
        description="Raw delivery on the stack's subscriptions: "
        "the message itself in the body; off, SNS's default, the body is SNS's "
        "notification JSON (the consumer reads both).",
    )


class SecuritySettings(BaseModel):
    """The network and the secrets; checked by _network_violations."""

    # Security: private subnets of an existing VPC (ids only: synth makes no lookup), and the
    # Secrets Manager secrets the handlers may read: the name handlers use -> the secret's name.
    vpc: VpcPlacement | None = Field(
        default=None,
        description="Private subnets of an existing VPC, by id, and how the function reaches AWS from them "
        "(egress: endpoints, existing_endpoints or nat).",
    )
    secrets: dict[
        Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")],
        Annotated[str, Field(pattern=r"^[A-Za-z0-9/_+=.@-]{1,512}$")],
    ] = Field(
        default_factory=dict,
        description="The Secrets Manager secrets the handlers may read: the name handlers use -> the secret's name.",
    )
    secrets_max_age_seconds: int = Field(
        default=300, ge=0, le=86_400, description=ConsumerSettings.model_fields["secrets_max_age_seconds"].description
    )
    secrets_kms_key_arn: KmsKeyArn | None = Field(
        default=None,
        description="The customer-managed KMS key the "
        "secrets are encrypted with, if not Secrets Manager's own (read "
        "through Secrets Manager only).",
    )


# A follow-up destination's name, as handlers write it in ``record.emit(..., to=name)``.
FOLLOWUP_DESTINATION_NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")
SQS_QUEUE_ARN = re.compile(rf"{_ARN}:sqs:([a-z0-9-]+):(\d{{12}}):([\w-]{{1,80}}(\.fifo)?)")
SQS_QUEUE_URL = re.compile(
    r"https://(?:sqs\.([a-z0-9-]+)|([a-z0-9-]+)\.queue)\.amazonaws\.com(\.cn)?/(\d{12})/([\w-]{1,80}(\.fifo)?)"
)
CONSUMER_NAME = re.compile(r"[a-z][a-z0-9-]{0,19}")


class FollowUpSettings(BaseModel):
    """Where handlers may send follow-up events; checked by _followup_violations and, for the stage's consumers
    they name, by consumers_for_stage."""

    followup_destinations: dict[str, str] = Field(
        default_factory=dict,
        description="The queues handlers may emit follow-up events to (`record.emit(event, to=name)`): name -> a "
        "queue ARN, a queue URL, or the name of one of the stage's `consumers`. The function may send to these "
        "queues only (sqs:SendMessage); needs idempotency. Not inherited by the stage's further consumers.",
    )


_CONSUMER = ConsumerSettings.model_fields


class DependencySettings(BaseModel):
    """The downstream services handlers call: their circuit breakers (docs/design.md §9); checked by
    _dependency_violations."""

    breaker_enabled: bool | None = Field(
        default=None,
        description="Circuit breakers on the dependencies routes declare: an outage pauses the queue's mapping "
        "instead of filling the DLQ. Off, a dependency's failures are retried and quarantined like any other. "
        "Unset: on when idempotency is (their state lives in its table).",
    )
    breaker_threshold: int = Field(
        default=_CONSUMER["breaker_threshold"].default, ge=1, le=10_000,
        description=_CONSUMER["breaker_threshold"].description,
    )  # fmt: skip
    breaker_window_seconds: float = Field(
        default=_CONSUMER["breaker_window_seconds"].default, gt=0, le=3_600,
        description=_CONSUMER["breaker_window_seconds"].description,
    )  # fmt: skip
    breaker_cool_down_seconds: float = Field(
        default=_CONSUMER["breaker_cool_down_seconds"].default, ge=1, le=3_600,
        description=_CONSUMER["breaker_cool_down_seconds"].description,
    )  # fmt: skip
    breaker_cool_down_cap_seconds: float = Field(
        default=_CONSUMER["breaker_cool_down_cap_seconds"].default, ge=1, le=3_600,
        description=_CONSUMER["breaker_cool_down_cap_seconds"].description,
    )  # fmt: skip
    breaker_alarm_minutes: int = Field(
        default=10, ge=2, le=1_440, description="The alarm on a dependency's breaker fires once it has stayed open "
        "this long.",
    )  # fmt: skip
    dependency_rate_limits: dict[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")], RateLimitSetting] = Field(
        default_factory=dict,
        description='Rate limits per dependency: its name -> `{"rate_per_second": 20, "burst": 20}` (burst: '
        "one second of the rate by default), held across every instance by token leases in the idempotency table.",
    )
    orders_api_url: str | None = Field(
        default=None, pattern=r"^https?://\S+$",
        description=OrdersApiSettings.model_fields["orders_api_url"].description,
    )  # fmt: skip


class HygieneSettings(BaseModel):
    """Stage hygiene, and the stage's further consumers (checked at for_stage)."""

    # Stage hygiene: prod keeps its data and refuses stack deletion; dev and local clean up.
    retain_data: bool = Field(default=False, description="Keep the queues, table and bucket when the stack is deleted.")
    termination_protection: bool = Field(
        default=False, description="Refuse the stack's deletion; needs an alarm target."
    )
    consumers: dict[ConsumerName, dict[str, Any]] = Field(
        default_factory=dict,
        description="More consumers in the stage's stack, each "
        "a name and the settings it changes from the stage's "
        "(stage-wide ones excepted).",
    )


class StackSettings(
    FollowUpSettings,
    HygieneSettings,
    DependencySettings,
    SecuritySettings,
    ProducerSettings,
    MonitoringSettings,
    FunctionSettings,
    MappingSettings,
    QueueSettings,
    NameSettings,
):
    """One stage's settings, each concern's fields from its own model (above), the AWS rules across them
    checked by one function a concern (_RULES)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @property
    def breakers(self) -> bool:
        """Whether the stage's function has circuit breakers (breaker_enabled, unset: with idempotency)."""
        return self.idempotency if self.breaker_enabled is None else self.breaker_enabled

    @property
    def idempotency_ttl_seconds(self) -> int:
        """A message can wait its retention in the queue, then the DLQ's before a redrive."""
        return self.retention_period_seconds + self.dlq_retention_period_seconds

    @property
    def payload_retention_seconds(self) -> int:
        """How long an offloaded payload must stay readable: its message's queue retention, the DLQ's
        after a quarantine (which starts the DLQ's clock anew), and one more pass through the queue
        after a redrive (docs/decisions/049-payload-bucket.md)."""
        return 2 * self.retention_period_seconds + self.dlq_retention_period_seconds

    @property
    def payload_expiration_days(self) -> int:
        """When the payload bucket's lifecycle deletes a payload: its retention in whole days, plus one
        (S3 runs lifecycle rules once a day and never early). The bill (planning/cost.py) stores it as long."""
        return -(-self.payload_retention_seconds // 86_400) + 1

    @property
    def mapping_max_concurrency(self) -> int | None:
        """The mapping's maximum concurrency: none in provisioned mode, where the pollers bound it."""
        return None if self.provisioned_pollers is not None else self.max_concurrency

    @property
    def max_receive_count(self) -> int:
        """Receives before the DLQ: the first one plus ``max_retries``."""
        return self.max_retries + 1

    @property
    def retry_delays_seconds(self) -> tuple[float, ...]:
        """The longest a failed message waits before each retry: its backoff's ceiling after that receive
        (10, 20, 40, 80 s by default), or the visibility timeout where the backoff is off or not applied."""
        backoff = Backoff(self.retry_backoff_base_seconds, self.retry_backoff_cap_seconds)
        return tuple(
            max(backoff.ceiling(receive), self.visibility_timeout_seconds if not backoff.enabled else 0)
            for receive in range(1, self.max_receive_count)
        )

    @property
    def longest_retry_seconds(self) -> float:
        """From a message's first receive to its last when it fails every one, at worst: each retry waits
        the visibility timeout (a backoff that could not be applied) or its backoff, the longer."""
        return sum(max(delay, self.visibility_timeout_seconds) for delay in self.retry_delays_seconds)

    @model_validator(mode="after")
    def _aws_rules(self) -> StackSettings:
        problems = list(_rule_violations(self))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @classmethod
    def for_stage(cls, stage: str, stages: dict[str, Any] | None) -> StackSettings:
        """The settings of ``stage`` from the ``stages`` context of cdk.json."""
        stages = stages or {}
        if stage not in stages:
            known = ", ".join(sorted(stages)) or "none"
            raise StackSettingsError(
                f"unknown stage {stage!r}: add it under context.stages in cdk.json (known: {known})"
            )
        return cls._validated(stage, stages[stage] or {}, stages, f"stage {stage!r}")

    @classmethod
    def consumers_for_stage(cls, stage: str, stages: dict[str, Any] | None) -> dict[str, StackSettings]:
        """The stage's further consumers: each its own settings over the stage's, validated alike."""
        base = cls.for_stage(stage, stages)
        raw = (stages or {})[stage] or {}
        # Follow-up destinations are a consumer's own: inherited, the stage's would send a consumer's to itself.
        shared = {key: value for key, value in raw.items() if key not in ("consumers", "followup_destinations")}
        out = {}
        for name, overrides in base.consumers.items():
            where = f"consumer {name!r} of stage {stage!r}"
            fixed = sorted(set(overrides or {}) & set(STAGE_WIDE))
            if fixed:
                raise StackSettingsError(
                    f"invalid settings for {where}: {', '.join(fixed)} apply to the whole stage: set them on the stage"
                )
            merged = {"service_name": f"{base.service_name}-{name}", **shared, **(overrides or {})}
            out[name] = cls._validated(stage, merged, stages or {}, where)
        for name, settings in {"": base, **out}.items():
            where = f"consumer {name!r} of stage {stage!r}" if name else f"stage {stage!r}"
            problems = _consumer_destination_violations(name, settings, set(out))
            if problems:
                raise StackSettingsError(f"invalid settings for {where}: {'; '.join(problems)}")
        services = [base.service_name, *(s.service_name for s in out.values())]
        repeated = sorted({service for service in services if services.count(service) > 1})
        if repeated:
            raise StackSettingsError(
                f"invalid settings for stage {stage!r}: service_name {', '.join(repeated)} is used by more than one "
                "consumer: each needs its own (its logs, metrics and dashboard)"
            )
        return out

    @classmethod
    def _validated(cls, stage: str, raw: dict[str, Any], stages: dict[str, Any], where: str) -> StackSettings:
        try:
            settings = cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'settings'}: "
                f"{error['msg'].removeprefix('Value error, ')}"
                for error in exc.errors(include_url=False)
            )
            raise StackSettingsError(f"invalid settings for {where}: {problems}") from None
        violations = _stage_violations(stage, settings, stages)
        if violations:
            raise StackSettingsError(f"invalid settings for {where}: {'; '.join(violations)}")
        # Stages often share an account and region: each stage's metrics, and its dashboard's
        # SEARCH expressions, keep to a namespace of their own.
        return settings.model_copy(update={"metrics_namespace": f"{settings.metrics_namespace}/{stage}"})


def settings_table() -> str:
    """docs/configuration.md's table of every stage setting, from the fields' own descriptions
    (tests/unit/test_settings_table.py keeps the two equal)."""
    rows = ["| setting | default | what it sets |", "|---|---|---|"]
    for name, field in StackSettings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = "unset" if default is None else f"`{json.dumps(default)}`"
        rows.append(f"| `{name}` | {shown} | {field.description} |")
    return "\n".join(rows)


PRODUCTION_STAGE = "prod"


def _stage_violations(stage: str, s: StackSettings, stages: dict[str, Any]) -> list[str]:
    """The rules that need the stage's name or its neighbours in cdk.json."""
    problems = []
    protected = s.termination_protection or stage == PRODUCTION_STAGE
    if protected and s.alarm_email is None and s.alarm_topic_arn is None:
        why = "termination_protection" if s.termination_protection else f"stage {PRODUCTION_STAGE!r}"
        problems.append(
            f"a production stage ({why}) must send its alarms somewhere: set alarm_email (subscribed to the "
            "stack's topic) or alarm_topic_arn (an existing topic in the stack's region)"
        )
    # Interface endpoints with private DNS, and a gateway route, exist once per VPC: a second stage
    # that makes them in the same VPC fails to deploy.
    if s.vpc is not None and s.vpc.creates_endpoints:
        for other, raw in sorted(stages.items()):
            vpc = (raw or {}).get("vpc") or {}
            if other != stage and vpc.get("vpc_id") == s.vpc.vpc_id and vpc.get("egress", "endpoints") == "endpoints":
                problems.append(
                    f"stages {stage!r} and {other!r} both make endpoints in {s.vpc.vpc_id} (vpc.egress endpoints): "
                    "their private DNS names collide; set vpc.egress to existing_endpoints in one of them"
                )
    return problems


def _producer_violations(s: StackSettings) -> list[str]:
    """Payloads and producers: the largest payload the memory parses, SNS topics, EventBridge rules."""
    problems = []
    # Parsing a payload takes up to PARSE_BYTES_PER_PAYLOAD_BYTE bytes per byte of JSON (measured:
    # docs/performance.md), beside the runtime and the payloads fetched ahead (payload_store.py).
    largest = max_payload_for(s.function_memory_mb)
    if s.max_payload_size_bytes > largest:
        needed_mb = memory_needed_mb(s.max_payload_size_bytes)
        problems.append(
            f"max_payload_size_bytes ({s.max_payload_size_bytes:,}) is more than a function of function_memory_mb "
            f"({s.function_memory_mb}) can parse: {largest:,} bytes at most ({RUNTIME_MB} MB of runtime, the "
            f"payloads fetched ahead, and {PARSE_BYTES_PER_PAYLOAD_BYTE} bytes per byte of JSON parsed). Lower "
            f"max_payload_size_bytes to {largest:,} or raise function_memory_mb to at least {needed_mb}"
        )
    if s.subscribe_sns_topics and not s.producer_sns_topics:
        problems.append("subscribe_sns_topics subscribes the queue to producer_sns_topics: list the topics there")
    if s.sns_raw_message_delivery and not s.subscribe_sns_topics:
        problems.append(
            "sns_raw_message_delivery is an attribute of the subscription the stack makes: set subscribe_sns_topics "
            "too, or set RawMessageDelivery on the subscription the topic's owner makes"
        )
    if s.fifo and s.producer_event_rules and not s.content_based_deduplication:
        problems.append(
            "producer_event_rules on a FIFO queue need content_based_deduplication = true: EventBridge sends no "
            "deduplication id (and its target must set SqsParameters.MessageGroupId)"
        )
    if s.fifo:
        standard = [arn for arn in s.producer_sns_topics if not arn.endswith(".fifo")]
        if standard:
            problems.append(
                f"producer_sns_topics {', '.join(standard)} are standard topics: SNS delivers to a FIFO queue only "
                "from a FIFO topic (name ending .fifo); use a FIFO topic or a standard queue"
            )
    return problems


def _queue_violations(s: StackSettings) -> list[str]:
    """The queue and its DLQ: retention, deduplication, room for the quarantine reason."""
    problems: list[str] = []
    # A standard queue's DLQ keeps the original enqueue time: it must keep messages longer.
    if s.dlq_retention_period_seconds <= s.retention_period_seconds:
        problems.append(
            f"dlq_retention_period_seconds ({s.dlq_retention_period_seconds}) must be > "
            f"retention_period_seconds ({s.retention_period_seconds})"
        )
    if s.content_based_deduplication and not s.fifo:
        problems.append("content_based_deduplication needs fifo = true")
    # A poison message as large as the queue allows must fit in the DLQ with its reason (quarantine.py).
    needed_dlq = s.max_message_size_bytes + DLQ_ROOM_BYTES
    if s.dlq_max_message_size_bytes < needed_dlq:
        fix = (
            f"raise dlq_max_message_size_bytes to {needed_dlq}"
            if needed_dlq <= LARGEST_MAX_MESSAGE_BYTES
            else f"lower max_message_size_bytes to at most {LARGEST_MAX_MESSAGE_BYTES - DLQ_ROOM_BYTES}"
        )
        problems.append(
            f"dlq_max_message_size_bytes ({s.dlq_max_message_size_bytes}) must be >= max_message_size_bytes "
            f"({s.max_message_size_bytes}) + {DLQ_ROOM_BYTES} for the quarantine reason = {needed_dlq} (SQS allows "
            f"{LARGEST_MAX_MESSAGE_BYTES} at most): {fix}"
        )
    return problems


def _function_violations(s: StackSettings) -> list[str]:
    """The function against the queue: timeouts, the time reserve, retries, logs."""
    problems: list[str] = []
    # AWS: a visibility timeout of at least six times the function timeout, plus the
    # batching window, so a message is not redelivered while a batch holding it runs
    # (and throttled retries have room).
    needed = 6 * s.function_timeout_seconds + s.max_batching_window_seconds
    if s.visibility_timeout_seconds < needed:
        problems.append(
            f"visibility_timeout_seconds ({s.visibility_timeout_seconds}) must be >= 6 x function_timeout_seconds "
            f"({s.function_timeout_seconds}) + max_batching_window_seconds ({s.max_batching_window_seconds}) = "
            f"{needed}: raise visibility_timeout_seconds or lower function_timeout_seconds"
        )
    if s.log_retention_days not in LOG_RETENTION_DAYS:
        problems.append(f"log_retention_days ({s.log_retention_days}) must be one of {LOG_RETENTION_DAYS}")
    if s.time_reserve_seconds >= s.function_timeout_seconds:
        problems.append(
            f"time_reserve_seconds ({s.time_reserve_seconds}) must be < function_timeout_seconds "
            f"({s.function_timeout_seconds}), or no record would ever start"
        )
    if s.retry_backoff_base_seconds > s.retry_backoff_cap_seconds:
        problems.append(
            f"retry_backoff_base_seconds ({s.retry_backoff_base_seconds:g}) must be <= retry_backoff_cap_seconds "
            f"({s.retry_backoff_cap_seconds:g})"
        )
    # A message that fails every receive must reach the DLQ: SQS deletes it, unprocessed and unseen, once
    # its retention ends, whatever receive it is on.
    elif s.longest_retry_seconds >= s.retention_period_seconds:
        problems.append(
            f"max_retries ({s.max_retries}) retries of a failing message take up to {s.longest_retry_seconds:,.0f} s "
            f"(each the visibility timeout, {s.visibility_timeout_seconds} s, or its backoff, the longer), not less "
            f"than retention_period_seconds ({s.retention_period_seconds}): it would expire before reaching the DLQ; "
            "lower max_retries or visibility_timeout_seconds, or raise retention_period_seconds"
        )
    return problems


def _concurrency_violations(s: StackSettings) -> list[str]:
    """The event source mapping: its concurrency, pollers and batches."""
    problems: list[str] = []
    # Reserved concurrency below the mapping's maximum throttles invocations, and
    # throttled receives push good messages to the DLQ unprocessed.
    if (
        s.reserved_concurrency is not None
        and s.mapping_max_concurrency is not None
        and (s.reserved_concurrency < s.mapping_max_concurrency)
    ):
        problems.append(
            f"reserved_concurrency ({s.reserved_concurrency}) must be >= max_concurrency ({s.max_concurrency})"
        )
    if s.provisioned_pollers is not None:
        # Each poller drives up to 10 concurrent invokes: a smaller reservation throttles them.
        bound = s.provisioned_pollers.max_invocations
        if s.reserved_concurrency is not None and s.reserved_concurrency < bound:
            problems.append(
                f"reserved_concurrency ({s.reserved_concurrency}) must be >= {INVOKES_PER_POLLER} x "
                f"provisioned_pollers.maximum ({s.provisioned_pollers.maximum}) = {bound}: each poller drives up to "
                f"{INVOKES_PER_POLLER} concurrent invokes; raise reserved_concurrency, lower "
                f"provisioned_pollers.maximum, or unset reserved_concurrency"
            )
        if "max_concurrency" in s.model_fields_set:
            problems.append(
                "provisioned_pollers and max_concurrency are alternatives: remove max_concurrency to use "
                "provisioned mode, or remove provisioned_pollers"
            )
        if s.provisioned_pollers.minimum > s.provisioned_pollers.maximum:
            problems.append(
                f"provisioned_pollers.minimum ({s.provisioned_pollers.minimum}) must be <= "
                f"provisioned_pollers.maximum ({s.provisioned_pollers.maximum})"
            )
    if s.fifo:
        if s.batch_size > 10:
            problems.append(f"batch_size ({s.batch_size}) must be <= 10 for a FIFO queue")
        if s.max_batching_window_seconds:
            problems.append(f"max_batching_window_seconds ({s.max_batching_window_seconds}) must be 0 for a FIFO queue")
    elif s.batch_size > 10 and s.max_batching_window_seconds < 1:
        problems.append(
            f"batch_size ({s.batch_size}) > 10 needs max_batching_window_seconds >= 1 "
            f"(got {s.max_batching_window_seconds})"
        )
    return problems


def _network_violations(s: StackSettings) -> list[str]:
    """Where the function reaches and what it reads: the VPC's egress, the secrets' key."""
    problems: list[str] = []
    if s.secrets_kms_key_arn is not None and not s.secrets:
        problems.append("secrets_kms_key_arn is the key of the stage's secrets: it needs secrets")
    if s.vpc is not None and s.idempotency and s.vpc.egress != "nat" and s.vpc.dynamodb_prefix_list_id is None:
        problems.append(
            f"vpc.dynamodb_prefix_list_id is needed with egress {s.vpc.egress} and idempotency: the function's "
            "HTTPS egress to DynamoDB goes to the region's prefix list (aws ec2 describe-managed-prefix-lists "
            f"--filters Name=prefix-list-name,Values=com.amazonaws.{s.vpc.region}.dynamodb)"
        )
    return problems


def _followup_violations(s: StackSettings) -> list[str]:
    """Follow-up destinations: their names, what each names, and the store that keeps follow-ups until sent."""
    problems: list[str] = []
    for name, target in s.followup_destinations.items():
        if not FOLLOWUP_DESTINATION_NAME.fullmatch(name):
            problems.append(
                f"followup_destinations: {name!r} is not a destination name: lowercase letters, digits, - and _, "
                "starting with a letter, at most 40 (for example billing)"
            )
        if not (SQS_QUEUE_ARN.fullmatch(target) or SQS_QUEUE_URL.fullmatch(target) or CONSUMER_NAME.fullmatch(target)):
            problems.append(
                f"followup_destinations.{name}: {target!r} is neither a queue ARN "
                "(arn:aws:sqs:eu-west-1:123456789012:billing), a queue URL "
                "(https://sqs.eu-west-1.amazonaws.com/123456789012/billing) nor one of the stage's consumers"
            )
    if s.followup_destinations and not s.idempotency:
        problems.append(
            "followup_destinations need idempotency = true: follow-ups are stored with the handler's completion "
            "until they are sent, which is what sends each exactly once"
        )
    return problems


def _dependency_violations(s: StackSettings) -> list[str]:
    """The breakers: where their state lives, how long they wait, when the alarm speaks."""
    problems: list[str] = []
    if s.dependency_rate_limits and not s.idempotency:
        problems.append(
            "dependency_rate_limits needs idempotency: the tokens every instance leases live in the idempotency "
            "table; set idempotency true, or remove dependency_rate_limits"
        )
    if s.breaker_enabled is False:
        return problems
    if s.breaker_enabled and not s.idempotency:
        problems.append(
            "breaker_enabled needs idempotency: the breakers' state, shared by every instance, lives in the "
            "idempotency table; set idempotency true, or breaker_enabled false"
        )
    if s.breaker_cool_down_seconds > s.breaker_cool_down_cap_seconds:
        problems.append(
            f"breaker_cool_down_seconds ({s.breaker_cool_down_seconds:g}) must be <= breaker_cool_down_cap_seconds "
            f"({s.breaker_cool_down_cap_seconds:g})"
        )
    # Probes come every cool-down at most: an alarm sooner than the longest one would fire between two probes.
    if s.breaker_alarm_minutes * 60 <= s.breaker_cool_down_cap_seconds:
        problems.append(
            f"breaker_alarm_minutes ({s.breaker_alarm_minutes}) must be longer than breaker_cool_down_cap_seconds "
            f"({s.breaker_cool_down_cap_seconds:g} s): a breaker is probed at least that often, and its alarm reads "
            "the open time each probe reports; raise breaker_alarm_minutes or lower the cap"
        )
    return problems


def _consumer_destination_violations(name: str, s: StackSettings, consumers: set[str]) -> list[str]:
    """Destinations that name a consumer: one of the stage's further consumers, never the one sending."""
    problems = []
    for destination, target in s.followup_destinations.items():
        if SQS_QUEUE_ARN.fullmatch(target) or SQS_QUEUE_URL.fullmatch(target):
            continue
        if target == name:
            problems.append(f"followup_destinations.{destination}: a consumer cannot send follow-ups to its own queue")
        elif target not in consumers:
            known = ", ".join(sorted(consumers)) or "none"
            problems.append(
                f"followup_destinations.{destination}: {target!r} is not one of the stage's consumers (declared: "
                f"{known}); name a consumer under consumers, or give the queue's ARN or URL"
            )
    return problems


def _alarm_violations(s: StackSettings) -> list[str]:
    """Where the alarms go."""
    problems: list[str] = []
    if s.alarm_topic_arn is not None and s.alarm_email is not None:
        problems.append(
            "alarm_email subscribes to the stack's own topic: with alarm_topic_arn, subscribe to that topic instead"
        )
    if s.vpc is not None and s.alarm_topic_arn is not None and arn_region(s.alarm_topic_arn) != s.vpc.region:
        problems.append(
            f"alarm_topic_arn is in {arn_region(s.alarm_topic_arn)} but the vpc is in {s.vpc.region}: "
            "CloudWatch alarms publish only to a topic in their own region"
        )
    return problems


# Each concern's rules (docs/design.md §5), in the order their problems are reported.
_RULES = (
    _queue_violations,
    _function_violations,
    _concurrency_violations,
    _producer_violations,
    _network_violations,
    _dependency_violations,
    _alarm_violations,
    _followup_violations,
)


def _rule_violations(s: StackSettings) -> list[str]:
    return [problem for check in _RULES for problem in check(s)]
