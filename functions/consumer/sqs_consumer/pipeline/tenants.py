"""The busiest tenants of a batch, and how long their messages waited: the fair queue's measure.

A producer that sets each message's ``MessageGroupId`` to its tenant (``sqs-publish --tenant-field``)
makes a standard queue a fair queue: one tenant's burst no longer raises the others' dwell time. The
consumer shows whether it does: per batch, the tenants with the most records in it, each with its
record count and the age of its oldest message when the batch started. Only the busiest few, so that
the metrics stay within their budget: each tenant that appears is a CloudWatch metric of its own
(docs/decisions/067-tenant-age-metrics.md). A batch whose records carry no group id costs one lookup a
record; on a FIFO queue the group is the ordering group, measured the same way.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from typing import Any

# Tenants measured per batch: the most records first.
BUSIEST_TENANTS = 5


def busiest_tenants(
    records: Iterable[Mapping[str, Any]], now_ms: float, top: int = BUSIEST_TENANTS
) -> list[tuple[str, int, float]]:
    """``(tenant, records, oldest age in ms)`` of the ``top`` tenants with the most records, most first
    (ties: the oldest message first, then the name)."""
    if top <= 0:
        return []
    counts: dict[str, int] = {}
    oldest: dict[str, float] = {}
    for record in records:
        attributes = record.get("attributes") or {}
        tenant = attributes.get("MessageGroupId")
        if not tenant:
            continue
        counts[tenant] = counts.get(tenant, 0) + 1
        age = _age_ms(attributes, now_ms)
        if age > oldest.get(tenant, -1.0):
            oldest[tenant] = age
    chosen = heapq.nsmallest(top, counts, key=lambda tenant: (-counts[tenant], -oldest[tenant], tenant))
    return [(tenant, counts[tenant], oldest[tenant]) for tenant in chosen]


def _age_ms(attributes: Mapping[str, Any], now_ms: float) -> float:
    try:
        return max(0.0, now_ms - int(attributes.get("SentTimestamp") or now_ms))
    except (TypeError, ValueError):  # a timestamp SQS would never send: the age is unknown, not an error
        return 0.0
