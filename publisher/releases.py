"""The released schemas: ``schema/<event_type>/v<N>.json``, one a type and version, as released.

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
Key = tuple[str, int]  # (event_type, version)


def released(schema_dir: Path = SCHEMA_DIR) -> dict[Key, dict[str, Any]]:
    """The released schemas, by event type and version."""
    found: dict[Key, dict[str, Any]] = {}
    for path in sorted(schema_dir.glob("*/v*.json")):
        match = _VERSION_FILE.fullmatch(path.name)
        if match is not None:
            found[path.parent.name, int(match[1])] = json.loads(path.read_text())
    return found
