"""The busiest tenants of a batch, and how long their messages waited: the fair queue's measure.

A producer that sets each message's ``MessageGroupId`` to its tenant (``sqs-publish --tenant-field``)
makes a standard queue a fair queue: one tenant's burst no longer raises the others' dwell time. The
consumer shows whether it does: per batch, the tenants with the most records in it, each with its
record count and the age of its oldest message when the batch started. Only the busiest few, so that
the metrics stay within their budget: each tenant that appears is a CloudWatch metric of its own
(docs/decisions/067-tenant-age-metrics.md). A batch whose first and last records carry no group id costs
two lookups; on a FIFO queue the group is the ordering group, measured the same way.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from typing import Any

# Tenants measured per batch: the most records first.
BUSIEST_TENANTS = 5
_NONE: Mapping[str, Any] = {}


def busiest_tenants(
    records: Sequence[Mapping[str, Any]], now_ms: float, top: int = BUSIEST_TENANTS
) -> list[tuple[str, int, float]]:
    """``(tenant, records, oldest age in ms)`` of the ``top`` tenants with the most records, most first
    (ties: the oldest message first, then the name).

    A batch whose first and last records carry no group id is taken to have none, and is not scanned:
    the per-record cost of queues without tenants stays nil (a batch mixing records with and without
    one, both ends without, goes unmeasured: producers of a fair queue set a tenant on every message)."""
    if top <= 0 or not records or not (_grouped(records[0]) or _grouped(records[-1])):
        return []
    grouped = [attributes for record in records
               if "MessageGroupId" in (attributes := record.get("attributes") or _NONE)]  # fmt: skip
    if not grouped:
        return []
    counts: dict[str, int] = {}
    oldest: dict[str, float] = {}
    for attributes in grouped:
        tenant = attributes["MessageGroupId"]
        if not tenant:
            continue
        counts[tenant] = counts.get(tenant, 0) + 1
        age = _age_ms(attributes, now_ms)
        if age > oldest.get(tenant, -1.0):
            oldest[tenant] = age
    chosen = heapq.nsmallest(top, counts, key=lambda tenant: (-counts[tenant], -oldest[tenant], tenant))
    return [(tenant, counts[tenant], oldest[tenant]) for tenant in chosen]


def _grouped(record: Mapping[str, Any]) -> bool:
    return "MessageGroupId" in (record.get("attributes") or _NONE)


def _age_ms(attributes: Mapping[str, Any], now_ms: float) -> float:
    try:
        return max(0.0, now_ms - int(attributes.get("SentTimestamp") or now_ms))
    except (TypeError, ValueError):  # a timestamp SQS would never send: the age is unknown, not an error
        return 0.0
