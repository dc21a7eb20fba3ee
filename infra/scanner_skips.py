"""checkov's findings that do not apply to this stack: the reasons, and how a skip is recorded.

checkov reads ``Metadata.checkov.skip`` on a resource: the reason travels with the template,
and docs/decisions/027-checkov-skips.md lists the same skips. Each construct records the skips of the resources it
makes, where it makes them (``skip``), so this module imports no construct. Everything else checkov
reports is fixed in the stack, and make test fails on any new finding (tests/infra/test_checks.py).
"""

from __future__ import annotations

from aws_cdk import CfnResource
from constructs import IConstruct

from infra.settings import INVOKES_PER_POLLER, StackSettings

SQS_SSE = (
    "Encrypted at rest with SQS-managed SSE (SqsManagedSseEnabled); the check only recognises a KMS key, "
    "which would need key-policy grants for every producer service (SNS, EventBridge) and KMS requests "
    "billed per data key (reused for KmsDataKeyReusePeriodSeconds, 5 minutes by default)"
)
LOG_GROUP_KMS = (
    "CloudWatch Logs encrypts every log group at rest; the function logs message ids, event types and "
    "reasons, never message bodies, so a customer-managed key would add cost and a key policy, not protection"
)
LAMBDA_DLQ = (
    "The function is invoked synchronously by the SQS event source mapping; a function DLQ applies to "
    "asynchronous invocations only. Failed messages go to the queue's DLQ (redrive policy and quarantine)"
)
LAMBDA_VPC = (
    "This stage sets no vpc: the function calls only AWS APIs, over TLS with IAM; set the stage's vpc to "
    "place it in private subnets"
)
LAMBDA_CONCURRENCY = (
    "reserved_concurrency is unset on purpose (accounts with a low concurrency limit refuse any "
    "reservation); the event source mapping's maximum concurrency ({bound}) bounds the consumer"
)
LAMBDA_CONCURRENCY_PROVISIONED = (
    "reserved_concurrency is unset on purpose (accounts with a low concurrency limit refuse any "
    "reservation); in provisioned mode each of at most {pollers} pollers drives up to {per_poller} "
    "concurrent invokes, so the consumer is bounded at {bound} executions, and by the account's pool"
)
LAMBDA_ENV_KMS = (
    "The environment holds no secret (queue URL, table name, tunables); secrets are read from Secrets "
    "Manager at run time, and Lambda encrypts environment variables at rest"
)
ENI_WRITE = (
    "A function in a VPC: Lambda creates, assigns addresses to and deletes the function's network "
    "interfaces with this role, before their ids exist, so the ENI statement names every resource; "
    "every other statement of the policy names its own queue, table, secret, key or log group"
)
XRAY_WRITE = (
    "Active tracing: X-Ray's PutTraceSegments and PutTelemetryRecords take no resource, so the statement "
    "CDK adds for them names every resource"
)
TOPIC_KMS = (
    "Alarm notifications carry alarm names and states only; CloudWatch cannot publish to a topic encrypted "
    "with the AWS-managed SNS key (docs/decisions/026-alarm-topic-unencrypted.md)"
)

BUCKET_ACCESS_LOGS = (
    "Payloads are written once under random keys and read by the consumer, which logs each read with its "
    "message id; server access logs would need a second bucket kept as long, and CloudTrail's S3 data events "
    "are the account's choice for object-level audit"
)
BUCKET_VERSIONING = (
    "Each payload is written once under a key its producer's extended client makes unique, never overwritten; "
    "versions would only keep deleted payloads past the lifecycle rule that expires them after their messages"
)


def skip(construct: IConstruct, check: str, reason: str) -> None:
    """Record a reasoned checkov skip on ``construct``'s CloudFormation resource."""
    resource = construct if isinstance(construct, CfnResource) else construct.node.default_child
    assert isinstance(resource, CfnResource), f"{construct.node.path} has no CloudFormation resource"
    metadata = resource.get_metadata("checkov") or {"skip": []}
    metadata["skip"].append({"id": check, "comment": reason})
    resource.add_metadata("checkov", metadata)


def unbounded_concurrency(settings: StackSettings) -> str:
    """Why a function without reserved concurrency is still bounded, with the stage's figures."""
    pollers = settings.provisioned_pollers
    if pollers is None:
        return LAMBDA_CONCURRENCY.format(bound=settings.max_concurrency)
    return LAMBDA_CONCURRENCY_PROVISIONED.format(
        pollers=pollers.maximum, per_poller=INVOKES_PER_POLLER, bound=pollers.max_invocations
    )
