"""The busiest tenants of a batch, with their oldest message's age: one EMF document each, within the budget."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Metrics

from sqs_consumer.observability import EmfDocuments
from sqs_consumer.pipeline import BatchConsumer
from sqs_consumer.pipeline.tenants import busiest_tenants
from sqs_consumer.routes import REGISTRY
from sqs_consumer.testing import events as sqs
from sqs_consumer.testing.fakes import FakeContext, InMemoryDLQ


def record(tenant: str | None, sent_ms: int) -> dict[str, Any]:
    raw = sqs.record(sqs.body("hello"), sent_timestamp_ms=sent_ms)
    if tenant is not None:
        raw["attributes"]["MessageGroupId"] = tenant
    return raw


def test_busiest_tenants_are_the_most_records_first_with_their_oldest_age():
    # GIVEN a noisy tenant with 5 records, a quiet one with 1 old record, one with 2, and a record with no tenant
    records = [record("noisy", 9_000 + i) for i in range(5)]
    records += [record("quiet", 1_000), record("mid", 8_000), record("mid", 5_000), record(None, 0)]

    # WHEN the two busiest are taken at 10 s
    busiest = busiest_tenants(records, 10_000.0, top=2)

    # THEN they come by count, each with its oldest message's age; the rest are left out
    assert busiest == [("noisy", 5, 1_000.0), ("mid", 2, 5_000.0)]
    assert busiest_tenants(records, 10_000.0, top=0) == []
    assert busiest_tenants([record(None, 0)], 10_000.0) == []


def test_ties_go_to_the_oldest_message():
    records = [record("new", 9_000), record("old", 2_000)]
    assert [tenant for tenant, _, _ in busiest_tenants(records, 10_000.0, top=1)] == ["old"]


def test_consumer_writes_one_document_per_busiest_tenant(capsys):
    # GIVEN a consumer that measures the 2 busiest tenants, and a batch of 3 tenants
    metrics = Metrics(namespace="Test", service="orders")
    consumer = BatchConsumer(REGISTRY, InMemoryDLQ(), metrics=metrics, wall_clock_ms=lambda: 10_000.0,
                             busiest_tenants=2)  # fmt: skip
    batch = sqs.event(record("a", 9_000), record("a", 8_000), record("b", 1_000), record("b", 9_500), record("c", 0))

    # WHEN it is handled
    consumer.handle(batch, FakeContext())

    # THEN two documents carry a tenant dimension, its record count and its oldest age, as Powertools would write
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    tenants = {doc["tenant"]: doc for doc in documents if "tenant" in doc}
    assert set(tenants) == {"a", "b"}
    assert (tenants["b"]["TenantRecords"], tenants["b"]["TenantMessageAgeMax"]) == ([2.0], [9_000.0])
    [directive] = tenants["a"]["_aws"]["CloudWatchMetrics"]
    assert sorted(map(sorted, directive["Dimensions"])) == [["service", "tenant"]]
    assert {metric["Name"]: metric["Unit"] for metric in directive["Metrics"]} == {
        "TenantRecords": "Count",
        "TenantMessageAgeMax": "Milliseconds",
    }


def test_a_batch_without_group_ids_writes_no_tenant_document(capsys):
    consumer = BatchConsumer(REGISTRY, InMemoryDLQ(), metrics=Metrics(namespace="Test", service="orders"))
    consumer.handle(sqs.event(record(None, 0)), FakeContext())
    assert '"tenant"' not in capsys.readouterr().out


def test_tenant_shapes_are_not_kept_for_ever(capsys):
    documents = EmfDocuments(Metrics(namespace="Test", service="orders"))
    for start in range(0, 1_200, 100):
        documents.write_tenants([(f"t{n}", 1, 0.0) for n in range(start, start + 100)])
    assert len(documents._tenant_shapes) <= 1_100
    assert len(capsys.readouterr().out.splitlines()) == 1_200


def test_a_batch_is_scanned_when_either_end_has_a_group_id():
    # GIVEN batches whose first, or only last, record carries a tenant; and one whose ends carry none
    tail = [record(None, 0), record("a", 5_000), record("b", 9_000)]
    ends_bare = [record(None, 0), record("a", 5_000), record(None, 0)]

    # THEN the first is measured in full; the second is taken to have no tenants (its cost stays two lookups)
    assert busiest_tenants(tail, 10_000.0) == [("a", 1, 5_000.0), ("b", 1, 1_000.0)]
    assert busiest_tenants(ends_bare, 10_000.0) == []
