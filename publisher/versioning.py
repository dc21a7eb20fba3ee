"""The version a publisher sends: each event validated as that version, and stamped with it.

The current version of an event type (its route's model, the default) is validated by the consumer's
own parse; a body without ``event_version`` gets the version sent stamped into it, unless that is 1
(absent means 1: the body goes as it was written). An older one (``--event-version 1`` while the type
is at 2: a producer not yet moved on, a consumer not yet deployed) is validated against its schema as
released (schema/<type>/v<N>.json, what a consumer still on that version reads), then upcast by the
route's upcasters and validated by the current model (what the new consumer will do with it): a message
either consumer would refuse is not sent.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from publisher.releases import SCHEMA_DIR, released
from sqs_consumer.errors import PoisonMessageError
from sqs_consumer.kinds import QuarantineKind
from sqs_consumer.models.base import BaseEvent
from sqs_consumer.registry import EventRegistry
from sqs_consumer.versions import VERSION_FIELD, upcast


class VersionedEvents:
    """Validates and stamps each event as ``version`` (None: its type's current version)."""

    def __init__(self, registry: EventRegistry, version: int | None = None, schema_dir: Path = SCHEMA_DIR) -> None:
        if version is not None and version < 1:
            raise ValueError(f"an event version is a whole number from 1, not {version}")
        self._registry = registry
        self._version = version
        self._schema_dir = schema_dir

    def prepare(self, document: object) -> tuple[str, BaseEvent]:
        """The body to send and its event as the consumer's current model; ``PoisonMessageError`` says why not."""
        body = document if isinstance(document, str) else json.dumps(document, separators=(",", ":"))
        try:  # the fast path: an event of its type's current version, as its producer wrote it (absent means 1)
            event = self._registry.parse(body)
        except PoisonMessageError:
            pass
        else:
            if self._version is None or event.event_version == self._version:
                return body, event
        try:
            decoded = json.loads(body) if isinstance(document, str) else document
        except ValueError:
            decoded = None
        route = self._registry.routes.get(str(decoded.get("event_type"))) if isinstance(decoded, dict) else None
        if route is None:  # not an object, or no route for its type: the parse says why
            return body, self._registry.parse(body)
        assert isinstance(decoded, dict)
        version = self._version or route.version
        declared = decoded.get(VERSION_FIELD, version)
        if declared != version:
            raise _refused(f"event_version {declared!r}: not the version sent, {version}", route.event_type)
        if version > route.version:
            raise _refused(f"version {version} of {route.event_type!r} is unknown: the models know {route.version}",
                           route.event_type)  # fmt: skip
        stamped = {**decoded, VERSION_FIELD: version}
        body = json.dumps(stamped, separators=(",", ":"))
        if version == route.version:
            return body, self._registry.parse(body)
        self._check_released(stamped, route.event_type, version)
        current = upcast(stamped, version, route.version, route.upcasters)
        try:
            return body, self._registry.adapter.validate_python(current)
        except Exception as exc:  # a ValidationError: as the consumer would quarantine it
            raise _refused(f"upcast from version {version}: {exc}", route.event_type) from None

    def _check_released(self, document: dict[str, Any], event_type: str, version: int) -> None:
        validator = _validator(self._schema_dir, event_type, version)
        if validator is None:
            raise _refused(f"version {version} of {event_type!r} was never released (schema/)", event_type)
        error = next(iter(validator.iter_errors(document)), None)
        if error is not None:
            where = ".".join(str(part) for part in error.absolute_path) or "<event>"
            raise _refused(f"not valid as released version {version}: {where}: {error.message}", event_type)


@cache
def _validator(schema_dir: Path, event_type: str, version: int) -> Any:
    import jsonschema  # noqa: PLC0415  # only for an older version

    schema = released(schema_dir).get((event_type, version))
    return None if schema is None else jsonschema.Draft202012Validator(schema)


def _refused(reason: str, event_type: str) -> PoisonMessageError:
    return PoisonMessageError(QuarantineKind.INVALID_ENVELOPE, reason, event_type)
