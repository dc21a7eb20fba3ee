"""The released schemas: ``schema/<event_type>/v<N>.json``, one a type and version, as released.

A type or version not released yet is marked new, explicitly: ``schema/<event_type>/v<N>.unreleased``
(empty; `make new-event` writes it, `make schema-release` replaces it with the schema). A registered
version with neither fails the schema gate: it would otherwise ship without a schema to compare with.

Read by the schema gate (publisher/schema.py) and by the publisher, which validates an older version
against the schema a consumer still on it reads (publisher/versioning.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schema"
_VERSION_FILE = re.compile(r"v([1-9][0-9]*)\.json")
_NEW_FILE = re.compile(r"v([1-9][0-9]*)\.unreleased")
Key = tuple[str, int]  # (event_type, version)


def released(schema_dir: Path = SCHEMA_DIR) -> dict[Key, dict[str, Any]]:
    """The released schemas, by event type and version."""
    found: dict[Key, dict[str, Any]] = {}
    for path in sorted(schema_dir.glob("*/v*.json")):
        match = _VERSION_FILE.fullmatch(path.name)
        if match is not None:
            found[path.parent.name, int(match[1])] = json.loads(path.read_text())
    return found


def new_path(schema_dir: Path, event_type: str, version: int) -> Path:
    """The file that marks a version of a type as new: not released yet, so not compared."""
    return schema_dir / event_type / f"v{version}.unreleased"


def marked_new(schema_dir: Path = SCHEMA_DIR) -> set[Key]:
    """The versions marked new, by event type and version."""
    found: set[Key] = set()
    for path in schema_dir.glob("*/v*.unreleased"):
        match = _NEW_FILE.fullmatch(path.name)
        if match is not None:
            found.add((path.parent.name, int(match[1])))
    return found


def mark_new(event_type: str, version: int, schema_dir: Path = SCHEMA_DIR) -> Path:
    """Mark a version of a type as new (`make new-event`): the gate lets it through until it is released."""
    path = new_path(schema_dir, event_type, version)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    return path
