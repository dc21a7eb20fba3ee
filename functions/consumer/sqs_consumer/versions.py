"""Event versions: which version a model is, which a body declares, and the upcasters between them.

An event type's shape changes by versions (docs/decisions/065-event-versions.md). The consumer has the
model of each type's current version only; a body of an older version is brought up to it by the
route's upcasters, pure functions over the JSON object, one a version (``{1: v1_to_v2, 2: v2_to_v3}``),
chained, so that the handler always receives the current model and a message sent before a deploy,
still in the queue or the DLQ, runs after it. A body of a newer version than the consumer knows is not
poison: a newer consumer may be deploying, so it is retried with backoff (``UnknownEventVersionError``)
and quarantined as ``unknown_event_version`` only on its last receive.

Only bodies that the per-record parse refused come here: a model at version N > 1 requires
``event_version: N``, so the parse refuses every other version by itself and costs nothing more.
This module imports nothing of the pipeline: the publisher and the schema gate use it too.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from typing import Any

from sqs_consumer.errors import PoisonMessageError, UnknownEventVersionError, describe
from sqs_consumer.kinds import QuarantineKind
from sqs_consumer.models.base import BaseEvent

# One step up: the JSON object of an event at version N to the same event at version N + 1. Pure: the
# same input always gives the same output (a redelivered message is upcast to the same event, so its
# idempotency fingerprint matches), and it neither reads nor writes anything else.
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

VERSION_FIELD = "event_version"
# A body without the field is at version 1: every message sent before versions existed.
ABSENT_VERSION = 1
_BASE_FIELD = BaseEvent.model_fields[VERSION_FIELD]


def version_of(model: type[BaseEvent]) -> int:
    """The version a model is: its ``event_version`` literal, or 1 when it keeps BaseEvent's field."""
    field = model.model_fields[VERSION_FIELD]
    annotation = field.annotation
    if typing.get_origin(annotation) is typing.Literal:
        values = typing.get_args(annotation)
        if len(values) == 1 and type(values[0]) is int and values[0] > ABSENT_VERSION:
            if not field.is_required():
                raise TypeError(f"{model.__name__}.event_version must be required (no default): absent means 1")
            return values[0]
    elif annotation is int and field.default == ABSENT_VERSION and field.metadata == _BASE_FIELD.metadata:
        return ABSENT_VERSION
    raise TypeError(f"{model.__name__}.event_version must be BaseEvent's (version 1) or a single Literal[N], N > 1")


def check_upcasters(model: type[BaseEvent], upcasters: Mapping[int, Upcaster]) -> None:
    """One upcaster from each version below the model's, and none other."""
    expected = set(range(ABSENT_VERSION, version_of(model)))
    if set(upcasters) != expected:
        raise ValueError(
            f"{model.__name__} is version {version_of(model)}: it needs one upcaster from each older version "
            f"{sorted(expected)}, keyed by the version it reads; got {sorted(upcasters)}"
        )
    for version, upcaster in upcasters.items():
        if not callable(upcaster):
            raise TypeError(f"{model.__name__}: the upcaster from version {version} is not callable")


def declared_version(value: object) -> int | None:
    """A body's ``event_version`` as a version: a positive whole number (a bool or a text is none)."""
    if type(value) is int and value >= ABSENT_VERSION:
        return value
    return None


def upcast(
    document: dict[str, Any],
    declared: int,
    current: int,
    upcasters: Mapping[int, Upcaster],
    through: dict[int, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``document`` (at version ``declared``) brought up to ``current``, one upcaster at a time; ``through``,
    when given, receives the document at each version below ``current`` (for the idempotency fingerprint).

    Raises ``UnknownEventVersionError`` for a version above ``current``; ``PoisonMessageError`` when an
    upcaster cannot read the body (it lacks what its declared version has) or changes the event's identity.
    """
    event_type = str(document.get("event_type"))
    if declared > current:
        raise UnknownEventVersionError(event_type, declared, current)
    for version in range(declared, current):
        if through is not None:
            through[version] = document
        try:
            upcast_document = upcasters[version](document)
        except Exception as exc:  # the body is not what its declared version says
            raise PoisonMessageError(
                QuarantineKind.INVALID_PAYLOAD,
                f"event_version {declared} cannot be upcast: the upcaster from version {version} raised "
                f"{describe(exc)}",
                event_type,
            ) from None
        _check_identity(document, upcast_document, version)
        document = {**upcast_document, VERSION_FIELD: version + 1}
    return document


def _check_identity(before: Mapping[str, Any], after: object, version: int) -> None:
    """An upcaster returns a JSON object with the same ``event_id`` and ``event_type``: a different one
    would be another event (its idempotency key, its route)."""
    if not isinstance(after, dict):
        raise TypeError(f"the upcaster from version {version} returned {type(after).__name__}, not a dict")
    for key in ("event_id", "event_type"):
        if after.get(key) != before.get(key):
            raise TypeError(f"the upcaster from version {version} changed the event's {key}")
