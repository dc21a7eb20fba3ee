"""The payload bucket: where producers offload events too large for the queue (payloads.py's pointers).

One per stack, shared by its consumers: a producer's extended client is configured with one bucket,
and a pointer names its bucket, so any consumer can follow it. Objects expire after the longest time a
message that points to them can still be consumed (``StackSettings.payload_retention_seconds``, over
every consumer of the stack), plus a day: S3 runs lifecycle rules once a day and never early.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Acknowledgment, CfnResource, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra import scanner_skips
from infra.settings import StackSettings

# The function's calls: GetObject on the payloads, and ListBucket on the bucket itself, without which S3
# answers a missing key with AccessDenied and the consumer could not tell payload_missing from
# payload_unreadable. Producers' one call (the extended clients' PutObject).
READ_ACTIONS = ("s3:GetObject",)
LIST_ACTIONS = ("s3:ListBucket",)
WRITE_ACTIONS = ("s3:PutObject",)
OBJECTS_WILDCARD = (
    "The function reads any payload a producer offloaded: keys are chosen by the producers' extended clients "
    "(random UUIDs), so the statement names every object of the one payload bucket, and s3:GetObject alone"
)


def expiration_days(settings: Sequence[StackSettings]) -> int:
    """Days after which a payload is deleted: the longest retention of any consumer, in whole days, plus one."""
    return max(s.payload_expiration_days for s in settings)


class PayloadBucketConstruct(Construct):
    """Encrypted (SSE-S3), TLS-only, public access blocked, ACLs disabled, objects expiring.

    SSE-S3 rather than a KMS key: producers in other accounts write with their own extended client
    and would each need grants on a key policy. ACLs are disabled (bucket owner enforced), so an object
    another account writes is the stack's account's, readable by the function.
    """

    def __init__(self, scope: Construct, construct_id: str, *, settings: Sequence[StackSettings]) -> None:
        super().__init__(scope, construct_id)
        retain = any(s.retain_data for s in settings)
        self.expiration_days = expiration_days(settings)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=False,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpirePayloadsAfterTheirMessages",
                    expiration=Duration.days(self.expiration_days),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
            # prod keeps what waiting messages point to; dev and local delete the bucket with the stack
            # (emptied first, see `make destroy`: auto-deleting objects would add a custom resource function).
            removal_policy=RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY,
        )
        reason = scanner_skips.BUCKET_ACCESS_LOGS
        Validations.of(self.bucket).acknowledge(Acknowledgment(id="AwsSolutions::AwsSolutions-S1", reason=reason))
        scanner_skips.skip(self.bucket, "CKV_AWS_18", reason)
        scanner_skips.skip(self.bucket, "CKV_AWS_21", scanner_skips.BUCKET_VERSIONING)
        producers = sorted({principal for s in settings for principal in s.producer_principals})
        if producers:
            self.bucket.add_to_resource_policy(
                iam.PolicyStatement(
                    principals=[iam.ArnPrincipal(p) for p in producers],
                    actions=list(WRITE_ACTIONS),
                    resources=[self.bucket.arn_for_objects("*")],
                )
            )

    def grant_read(self, role: iam.Role) -> None:
        """GetObject on the payloads, and ListBucket on this bucket alone (so a missing key reads as
        NoSuchKey, not AccessDenied)."""
        for actions, arn in self.read_statements():
            role.add_to_policy(iam.PolicyStatement(actions=list(actions), resources=[arn]))
        resource = self.bucket.node.default_child
        assert isinstance(resource, CfnResource)
        logical_id = Stack.of(self).resolve(Stack.of(self).get_logical_id(resource))
        finding = f"AwsSolutions::AwsSolutions-IAM5[Resource::<{logical_id}.Arn>/*]"
        Validations.of(role).acknowledge(Acknowledgment(id=finding, reason=OBJECTS_WILDCARD))

    def read_statements(self) -> list[tuple[tuple[str, ...], str]]:
        """What the function may do on the bucket, as (actions, resource): for its role and its endpoint."""
        return [(READ_ACTIONS, self.bucket.arn_for_objects("*")), (LIST_ACTIONS, self.bucket.bucket_arn)]
