"""Whether messages of one JSON Schema are read by a consumer of another: the rules of the schema gate.

In Confluent Schema Registry's words (docs/decisions/066-schema-compatibility-gate.md): a model is
compared with its version's schema as released in both directions, FULL compatibility.

- BACKWARD: the new consumer reads the messages the released schema allows (those still in the queue,
  the DLQ, or sent by producers not yet moved on): ``problems(writer=released, reader=model)``.
- FORWARD: a consumer still running the released version reads the messages of a producer on the new
  model: ``problems(writer=model, reader=released)``.

A change that breaks either is a new version of the event type, with an upcaster (versions.py), never
an edit of a released one. The rules, over the schemas as pydantic writes them:

- a field the reader requires is required by the writer too (an added required field breaks BACKWARD,
  a removed one FORWARD; one with a default is not required);
- a field both name: every type the writer allows, the reader allows (``integer`` is a ``number``),
  and when the reader lists values (``enum``, ``const``), the writer's values are among them;
- a field the writer names and the reader does not: the reader must take fields it does not name
  (``additionalProperties`` not false), or the field must fit its ``additionalProperties`` schema;
- a writer that takes fields it does not name, to a reader that refuses them, breaks.

Objects and arrays are compared field by field, item by item, through ``$ref``. Unions (``anyOf``,
``oneOf``) are read as the union of their branches' types and values. Not compared: bounds (``minimum``,
``maxLength``...), ``pattern`` and ``format``: a tightened bound passes, the decision says why.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

ANY_TYPE = frozenset({"string", "integer", "number", "boolean", "null", "object", "array"})


@dataclass
class Shape:
    """What a schema allows, flattened: its JSON types, its values if it lists them, and for an object
    its fields, for an array its items."""

    types: set[str] = field(default_factory=set)
    values: list[Any] | None = None  # None: any value of its types
    properties: dict[str, Any] = field(default_factory=dict)
    required: set[str] = field(default_factory=set)
    additional: Any = True  # True, False or a schema
    items: Any = None


def problems(writer: Mapping[str, Any], reader: Mapping[str, Any]) -> list[str]:
    """Where a reader on ``reader``'s schema would refuse a message ``writer``'s schema allows: one line a
    field, named by its path (``payload.name``)."""
    return list(_compare(writer, writer, reader, reader, ""))


def _compare(writer: Any, writer_root: Any, reader: Any, reader_root: Any, path: str) -> Iterator[str]:
    w, r = _shape(writer, writer_root), _shape(reader, reader_root)
    name = path or "<event>"
    widened = {kind for kind in w.types - r.types if not (kind == "integer" and "number" in r.types)}
    if widened:
        yield f"{name}: the writer allows {', '.join(sorted(widened))}, the reader does not"
    if r.values is not None:
        extra = [value for value in w.values or [] if value not in r.values]
        if w.values is None:
            yield f"{name}: the reader takes only {_listed(r.values)}, the writer any value"
        elif extra:
            yield f"{name}: the writer allows {_listed(extra)}, the reader does not"
    if "object" in w.types and "object" in r.types:
        yield from _objects(w, writer_root, r, reader_root, path)
    if "array" in w.types and "array" in r.types and w.items is not None and r.items is not None:
        yield from _compare(w.items, writer_root, r.items, reader_root, f"{name}[]")


def _objects(w: Shape, writer_root: Any, r: Shape, reader_root: Any, path: str) -> Iterator[str]:
    prefix = f"{path}." if path else ""
    for missing in sorted(r.required - w.required):
        yield f"{prefix}{missing}: the reader requires it, the writer may leave it out"
    for key in sorted(w.properties):
        if key in r.properties:
            yield from _compare(w.properties[key], writer_root, r.properties[key], reader_root, prefix + key)
        elif r.additional is False:
            yield f"{prefix}{key}: the writer may send it, the reader refuses fields it does not name"
        elif isinstance(r.additional, Mapping):
            yield from _compare(w.properties[key], writer_root, r.additional, reader_root, prefix + key)
    if w.additional is not False and r.additional is False:
        yield f"{path or '<event>'}: the writer allows fields it does not name, the reader refuses them"


def _shape(schema: Any, root: Any) -> Shape:
    schema = _resolved(schema, root)
    shape = Shape()
    if schema is True or schema == {}:
        shape.types = set(ANY_TYPE)
        return shape
    branches = schema.get("anyOf") or schema.get("oneOf")
    if branches:
        return _union([_shape(branch, root) for branch in branches])
    if "const" in schema:
        shape.values = [schema["const"]]
    elif "enum" in schema:
        shape.values = list(schema["enum"])
    declared = schema.get("type")
    if declared == "null":
        shape.values = [None]
    if declared is None:
        shape.types = {_json_type(value) for value in shape.values} if shape.values is not None else set(ANY_TYPE)
    else:
        shape.types = {declared} if isinstance(declared, str) else set(declared)
    shape.properties = dict(schema.get("properties", {}))
    shape.required = set(schema.get("required", []))
    shape.additional = schema.get("additionalProperties", True)
    shape.items = schema.get("items")
    return shape


def _union(shapes: list[Shape]) -> Shape:
    """The branches of a union as one shape: any branch's types and values; fields of its object branch."""
    union = Shape()
    for branch in shapes:
        union.types |= branch.types
        if branch.properties or branch.additional is not True:
            union.properties, union.required, union.additional = branch.properties, branch.required, branch.additional
        union.items = union.items if branch.items is None else branch.items
    listed = [branch.values for branch in shapes]
    union.values = None if any(values is None for values in listed) else [v for values in listed for v in values or []]
    return union


def _resolved(schema: Any, root: Any) -> Any:
    seen = 0
    while isinstance(schema, Mapping) and "$ref" in schema and seen < 32:
        reference = str(schema["$ref"])
        if not reference.startswith("#/"):
            raise ValueError(f"only local references are compared, not {reference!r}")
        target: Any = root
        for part in reference[2:].split("/"):
            target = target[part]
        schema, seen = target, seen + 1
    return schema


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "array" if isinstance(value, list) else "object" if isinstance(value, dict) else "string"


def _listed(values: list[Any]) -> str:
    return ", ".join(repr(value) for value in values[:10]) + (" ..." if len(values) > 10 else "")
