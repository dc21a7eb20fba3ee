"""The event contract as JSON Schema, every version of it, and the gate that keeps released versions readable.

    python -m publisher.schema             prints schema/events.schema.json (`make schema`)
    python -m publisher.schema --check     compares the models with the released schemas (`make schema-check`)
    python -m publisher.schema --release   records the models' schemas as released (`make schema-release`)

``schema/<event_type>/v<N>.json`` is the JSON Schema of version N of an event type as it was released:
one file a type and version, written by ``--release`` and never edited by hand. ``events.schema.json``,
for producers in other languages, accepts any of them: each type's current version from its model,
its older ones as released. The check fails, naming the event type, the version and the field, when a
model would break a released version in either direction (publisher/compatibility.py); a change that
must break is a new version with an upcaster (docs/decisions/066-schema-compatibility-gate.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from publisher.compatibility import problems
from publisher.releases import SCHEMA_DIR, Key, marked_new, new_path, released
from sqs_consumer.registry import EventRegistry


def current(registry: EventRegistry) -> dict[Key, dict[str, Any]]:
    """Each registered type's current version, as its model's JSON Schema."""
    return {(route.event_type, route.version): route.model.model_json_schema() for route in registry.routes.values()}


def versions(registry: EventRegistry, schema_dir: Path = SCHEMA_DIR) -> dict[Key, dict[str, Any]]:
    """Every version a consumer on ``registry`` reads: the current ones from the models, older ones as released."""
    models = current(registry)
    newest = {event_type: version for event_type, version in models}
    older = {key: schema for key, schema in released(schema_dir).items() if key[1] < newest.get(key[0], 0)}
    return dict(sorted({**older, **models}.items()))


def check(registry: EventRegistry, schema_dir: Path = SCHEMA_DIR) -> list[str]:
    """Why the models break the released versions (one line a field, naming the type and the version), and
    which registered versions are neither released nor marked new."""
    return unreleased(registry, schema_dir) + compatibility(registry, schema_dir)


def unreleased(registry: EventRegistry, schema_dir: Path = SCHEMA_DIR) -> list[str]:
    """The registered versions with no released schema that are not marked new: forgotten, never compared."""
    releases, new = released(schema_dir), marked_new(schema_dir)
    return [
        f"{event_type} v{version}: no released schema (schema/{event_type}/v{version}.json): run "
        f"`make schema-release` if it ships, or mark it new ({new_path(Path('schema'), event_type, version)}, "
        "as `make new-event` does)"
        for event_type, version in current(registry)
        if (event_type, version) not in releases and (event_type, version) not in new
    ]


def compatibility(registry: EventRegistry, schema_dir: Path = SCHEMA_DIR) -> list[str]:
    """Why the models break the released versions: one line a field, naming the type and the version."""
    releases = released(schema_dir)
    found: list[str] = []
    for (event_type, version), model in current(registry).items():
        label = f"{event_type} v{version}"
        shipped = sorted(v for t, v in releases if t == event_type)
        if shipped and shipped[-1] > version:
            found.append(f"{label}: version {shipped[-1]} was released; a released version is never taken back")
        if (event_type, version) not in releases:
            continue  # new (unreleased() says whether it is marked so): its upcasters read the released ones
        schema = releases[event_type, version]
        found += [f"{label}: BACKWARD (the new consumer reads released messages): {line}" for line in
                  problems(writer=schema, reader=model)]  # fmt: skip
        found += [f"{label}: FORWARD (a released consumer reads the new model's messages): {line}" for line in
                  problems(writer=model, reader=schema)]  # fmt: skip
    for event_type in sorted({t for t, _ in releases} - set(registry.routes)):
        found.append(f"{event_type}: released, but no route reads it: its messages would be unknown_event_type")
    return found


def release(registry: EventRegistry, schema_dir: Path = SCHEMA_DIR) -> list[Path]:
    """Writes each current model's schema as released, in place of its new mark; refuses (ValueError) while
    a model breaks a released version."""
    found = compatibility(registry, schema_dir)
    if found:
        raise ValueError("\n".join(found))
    written = []
    for (event_type, version), schema in current(registry).items():
        path = schema_dir / event_type / f"v{version}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        text = _dumps(schema)
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
            written.append(path)
        new_path(schema_dir, event_type, version).unlink(missing_ok=True)
    return written


def event_schema(registry: EventRegistry, schema_dir: Path = SCHEMA_DIR) -> dict[str, Any]:
    """One schema for producers: any version of any type. Each version's definitions under its own name."""
    definitions: dict[str, Any] = {}
    tops = []
    for (event_type, version), schema in versions(registry, schema_dir).items():
        name = f"{event_type}.v{version}"
        tops.append(name)
        own = {f"{name}.{key}": _renamed(value, name) for key, value in schema.get("$defs", {}).items()}
        definitions.update(own)
        definitions[name] = _renamed({key: value for key, value in schema.items() if key != "$defs"}, name)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "SQS consumer event",
        "description": "A message body: one version of one of the registered event types, selected by "
        "event_type and event_version (absent means 1).",
        "$defs": definitions,
        "oneOf": [{"$ref": f"#/$defs/{name}"} for name in tops],
    }


def _renamed(schema: Any, prefix: str) -> Any:
    """``schema`` with its local references pointing at definitions renamed under ``prefix``."""
    if isinstance(schema, Mapping):
        return {
            key: f"#/$defs/{prefix}.{value.removeprefix('#/$defs/')}"
            if key == "$ref" and isinstance(value, str)
            else _renamed(value, prefix)
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [_renamed(value, prefix) for value in schema]
    return schema


def _dumps(schema: Any) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def render(registry: EventRegistry | None = None, schema_dir: Path = SCHEMA_DIR) -> str:
    return _dumps(event_schema(registry or _registry(), schema_dir))


def _registry() -> EventRegistry:
    from sqs_consumer.routes import REGISTRY  # noqa: PLC0415  # the deployed routes; a test passes its own

    return REGISTRY


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m publisher.schema", description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--check", action="store_true", help="fail when a model breaks a released version")
    action.add_argument("--release", action="store_true", help="record the models' schemas as released")
    parser.add_argument("--schema-dir", type=Path, default=SCHEMA_DIR, help="default: the project's schema/")
    args = parser.parse_args(argv)
    if not (args.check or args.release):
        print(render(schema_dir=args.schema_dir), end="")
        return 0
    breaks = compatibility(_registry(), args.schema_dir)
    found = breaks if args.release else unreleased(_registry(), args.schema_dir) + breaks
    for line in found:
        print(f"schema-check: {line}", file=sys.stderr)
    if breaks:
        print("schema-check: a change that breaks a released version is a new version with an upcaster "
              "(README: add a version)", file=sys.stderr)  # fmt: skip
    if found:
        return 1
    if args.release:
        for path in release(_registry(), args.schema_dir):
            print(f"released {path}")
    else:
        print(f"schema-check: {len(current(_registry()))} event type(s) readable by and from their released versions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
