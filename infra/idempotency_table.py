"""The DynamoDB table that remembers processed event_ids (exactly-once effects)."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from infra.settings import StackSettings


class IdempotencyTableConstruct(Construct):
    """Keys are ``<namespace>#<md5(event_id)>``; items expire through DynamoDB TTL.

    A record must outlive every copy of its message: a copy can wait in the queue for
    its retention, then in the DLQ for the DLQ's retention before a redrive, so the
    TTL is their sum (``StackSettings.idempotency_ttl_seconds``).
    """

    def __init__(self, scope: Construct, construct_id: str, *, settings: StackSettings) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.TableV2(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name="id", type=dynamodb.AttributeType.STRING),
            billing=dynamodb.Billing.on_demand(),
            time_to_live_attribute="expiration",
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryptionV2.aws_managed_key(),
            # prod keeps its records (a redeploy must not forget what was processed) and refuses a delete.
            removal_policy=RemovalPolicy.RETAIN if settings.retain_data else RemovalPolicy.DESTROY,
            deletion_protection=settings.retain_data,
        )
