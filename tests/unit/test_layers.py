"""Layers of the function's code, read from its imports: no circles, shapes below the logic, the
pipeline behind the idempotency port; and no unit of the project's code grown too long to read."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

from tests.support.imports import ROOT, circles, edges, modules, parsed

FUNCTION = ("functions",)
PROJECT = ("functions", "infra", "local", "operations", "publisher", "planning", "benchmarks")
# A class past ~200 lines or a function past ~60 does more than one thing: split it by responsibility.
LONGEST_CLASS = 200
LONGEST_FUNCTION = 60


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


def long_units(paths: Iterable[Path]) -> list[str]:
    """Each class over LONGEST_CLASS lines and function over LONGEST_FUNCTION, nested ones included, counted
    from its ``class`` or ``def`` line to its last (decorators excluded)."""
    found = []
    for path in paths:
        for node in ast.walk(parsed(path)):
            if isinstance(node, ast.ClassDef):
                kind, limit = "class", LONGEST_CLASS
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                kind, limit = "function", LONGEST_FUNCTION
            else:
                continue
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            if lines > limit:
                where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
                found.append(f"{where}:{node.lineno} {kind} {node.name}: {lines} lines, over {limit}")
    return sorted(found)


def test_long_units_names_each_class_and_function_over_its_limit(tmp_path: Path):
    # GIVEN a module with a class and a nested function one line over their limits, and two units at theirs
    body = "\n".join(f"        x{line} = {line}" for line in range(LONGEST_FUNCTION - 1))
    at_limit = "\n".join(f"    y{line} = {line}" for line in range(LONGEST_FUNCTION - 1))
    padding = "\n".join(f"    z{line} = {line}" for line in range(LONGEST_CLASS - LONGEST_FUNCTION - 2))
    source = tmp_path / "units.py"
    source.write_text(
        f"class Long:\n    @staticmethod\n    def inner():\n{body}\n        return x0\n{padding}\n\n\n"
        f"@decorated\ndef at_limit():\n{at_limit}\n\n\nclass Short:\n    pass\n"
    )
    # WHEN its units are measured
    found = long_units([source])
    # THEN the class and the function over their limits are named, with their lengths; the decorator of the
    # function at its limit is not counted
    assert found == [
        f"{source}:1 class Long: {LONGEST_CLASS + 1} lines, over {LONGEST_CLASS}",
        f"{source}:3 function inner: {LONGEST_FUNCTION + 1} lines, over {LONGEST_FUNCTION}",
    ]


def test_the_project_has_no_class_over_200_lines_nor_function_over_60():
    # The function, the stack, the local pipeline, the CLIs, the planner, the benchmarks and the CDK app.
    found = long_units([*modules(PROJECT).values(), ROOT / "app.py"])
    # Every one named, not only the first a comparison of lists would show.
    assert not found, "units to split:\n" + "\n".join(found)
