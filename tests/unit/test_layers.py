"""Layers of the function's code, read from its imports: no circles, shapes below the logic, the
pipeline behind the idempotency port."""

from __future__ import annotations

from tests.support.imports import circles, edges

FUNCTION = ("functions",)
PROJECT = ("functions", "infra", "local", "operations", "publisher", "planning", "benchmarks")


def test_the_function_has_no_import_circle_not_even_through_type_annotations():
    # An annotation-only import is still a tie: the two modules cannot be read, moved or tested apart.
    assert circles(edges(FUNCTION)) == []


def test_the_project_has_no_import_circle():
    # The stack's constructs, the local pipeline, the CLIs, the planner and the benchmarks too.
    assert circles(edges(PROJECT)) == []


def test_the_pipeline_imports_the_idempotency_port_and_fingerprint_never_the_store():
    # GIVEN every import the pipeline's modules make, deferred and typing-only ones included
    imported = {
        edge.target
        for edge in edges(FUNCTION)
        if edge.source.startswith("sqs_consumer.pipeline") and edge.target.startswith("sqs_consumer.idempotency")
    }
    # THEN the store's transactions and item format stay behind the port
    assert imported == {"sqs_consumer.idempotency.port", "sqs_consumer.idempotency.fingerprint"}


def test_the_idempotency_port_and_fingerprint_import_nothing_of_the_store():
    imported = {
        edge.target
        for edge in edges(FUNCTION)
        if edge.source in {"sqs_consumer.idempotency.port", "sqs_consumer.idempotency.fingerprint"}
    }
    assert not {target for target in imported if target.startswith("sqs_consumer.idempotency")}
    assert "sqs_consumer.clients" not in imported


def test_the_shapes_import_nothing_of_the_logic():
    # Models sit below the logic that fills and reads them (registry, envelopes, pipeline): a shape that
    # imported its user would tie the two in a circle. A payload's pointer is itself a shape (payloads.py).
    outside = {
        (edge.source, edge.target)
        for edge in edges(FUNCTION)
        if edge.source.startswith("sqs_consumer.models")
        and not edge.target.startswith("sqs_consumer.models")
        and edge.target != "sqs_consumer.payloads"
    }
    assert not outside
