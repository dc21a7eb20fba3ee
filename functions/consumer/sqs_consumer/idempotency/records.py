"""The idempotency table's items: Powertools' format, and the item each step writes.

The table is the one Powertools' idempotency utility (``DynamoDBPersistenceLayer``) writes, item
for item: the same key, hashes, attributes and statuses, so either can read what the other wrote
(tests/integration/test_idempotency.py checks it against Powertools itself). What is sent to
DynamoDB, and when, is dynamodb.py's.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqs_consumer.idempotency.fingerprint import fingerprint, powertools_hash
from sqs_consumer.idempotency.port import Held
from sqs_consumer.models.base import BaseEvent
from sqs_consumer.models.followups import FollowUp, dump_followups, load_followups

# The namespace of the keys: "<function>.<namespace>#<md5 of event_id>" (Powertools' function_name).
KEY_NAMESPACE = "sqs_consumer.events"

# Powertools' record statuses.
INPROGRESS = "INPROGRESS"
COMPLETED = "COMPLETED"


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """What an item of the table says (Powertools' ``DataRecord``, the fields read here)."""

    status: str
    in_progress_expiry_timestamp: int | None
    payload_hash: str | None
    # The version of the event type the fingerprint is of (an attribute Powertools ignores; absent: 1).
    payload_version: int = 1
    # Follow-ups stored with the completion and not yet marked sent (an attribute Powertools ignores).
    followups: tuple[FollowUp, ...] = ()


class ItemFormat:
    """The items of one table, named and keyed as Powertools' ``DynamoDBPersistenceLayer`` names them."""

    key_attr = "id"
    expiry_attr = "expiration"
    in_progress_expiry_attr = "in_progress_expiration"
    status_attr = "status"
    data_attr = "data"
    validation_key_attr = "validation"
    followups_attr = "followups"
    fingerprint_version_attr = "fingerprint_version"

    def __init__(self, table_name: str, expires_after_seconds: int) -> None:
        self.table_name = table_name
        self.expires_after_seconds = expires_after_seconds
        self.key_prefix = f"{os.getenv('AWS_LAMBDA_FUNCTION_NAME', 'test-func')}.{KEY_NAMESPACE}"

    def key(self, event_id: str) -> dict[str, Any]:
        """The item's key: Powertools' hashed idempotency key of the event_id."""
        return {self.key_attr: {"S": f"{self.key_prefix}#{powertools_hash(event_id)}"}}

    def expiry(self) -> int:
        return int(time.time() + self.expires_after_seconds)

    def record(self, item: dict[str, Any]) -> StoredRecord:
        """An item as DynamoDB returns it (attribute values typed ``{"S": ...}``, ``{"N": ...}``)."""

        def number(name: str) -> int | None:
            value = item.get(name, {}).get("N")
            return int(float(value)) if value is not None else None

        return StoredRecord(
            status=str(item.get(self.status_attr, {}).get("S", "")),
            in_progress_expiry_timestamp=number(self.in_progress_expiry_attr),
            payload_hash=item.get(self.validation_key_attr, {}).get("S"),
            payload_version=number(self.fingerprint_version_attr) or 1,
            followups=load_followups(item.get(self.followups_attr, {}).get("S")),
        )


def in_progress_put(items: ItemFormat, event: BaseEvent, remaining_ms: int) -> dict[str, Any]:
    """The item and condition of Powertools' ``save_inprogress``, as a transaction's Put."""
    now = time.time()
    item: dict[str, Any] = {
        **items.key(event.event_id),
        items.expiry_attr: {"N": str(items.expiry())},
        items.status_attr: {"S": INPROGRESS},
        items.in_progress_expiry_attr: {"N": str(int(now * 1000) + remaining_ms)},
        items.validation_key_attr: {"S": fingerprint(event)},
        **_fingerprint_version(items, event),
    }
    # Free, expired, or in progress past its expiry (a timed-out execution): Powertools' condition.
    condition = (
        "attribute_not_exists(#id) OR #expiry < :now OR "
        "(#status = :inprogress AND attribute_exists(#in_progress_expiry) AND #in_progress_expiry < :now_in_millis)"
    )
    return {
        "Put": {
            "TableName": items.table_name,
            "Item": item,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {
                "#id": items.key_attr,
                "#expiry": items.expiry_attr,
                "#in_progress_expiry": items.in_progress_expiry_attr,
                "#status": items.status_attr,
            },
            "ExpressionAttributeValues": {
                ":now": {"N": str(int(now))},
                ":now_in_millis": {"N": str(int(now * 1000))},
                ":inprogress": {"S": INPROGRESS},
            },
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
    }


def claim_token(put: dict[str, Any]) -> int:
    """A claim's token: the in-progress expiry its write stored, to the millisecond."""
    return int(put["Put"]["Item"][ItemFormat.in_progress_expiry_attr]["N"])


def completed_put(items: ItemFormat, event: BaseEvent, followups: Sequence[FollowUp] = ()) -> dict[str, Any]:
    """The item Powertools' ``save_success`` leaves, written whole (BatchWriteItem has no update), with the
    follow-ups not yet sent, if any: written again without them once they are."""
    item: dict[str, Any] = {
        **items.key(event.event_id),
        items.expiry_attr: {"N": str(items.expiry())},
        items.status_attr: {"S": COMPLETED},
        items.data_attr: {"S": json.dumps({})},
        items.validation_key_attr: {"S": fingerprint(event)},
        **_fingerprint_version(items, event),
    }
    if followups:
        item[items.followups_attr] = {"S": dump_followups(list(followups))}
    return {"PutRequest": {"Item": item}}


def _fingerprint_version(items: ItemFormat, event: BaseEvent) -> dict[str, Any]:
    """The fingerprint's version beside it, above 1 only: an item of version 1 is written as before versions."""
    if event.event_version == 1:
        return {}
    return {items.fingerprint_version_attr: {"N": str(event.event_version)}}


def conditional_delete(items: ItemFormat, held: Held) -> dict[str, Any]:
    """Delete ``held``'s record only while it is still this claim's: in progress, with its token."""
    return {
        "Delete": {
            "TableName": items.table_name,
            "Key": items.key(held.event.event_id),
            "ConditionExpression": "#status = :inprogress AND #in_progress_expiry = :token",
            "ExpressionAttributeNames": {
                "#status": items.status_attr,
                "#in_progress_expiry": items.in_progress_expiry_attr,
            },
            "ExpressionAttributeValues": {":inprogress": {"S": INPROGRESS}, ":token": {"N": str(held.token)}},
        }
    }
