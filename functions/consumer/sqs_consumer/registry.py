"""Routing: a mapping from ``event_type`` to its model and handler.

The registry also owns the parser: one ``TypeAdapter`` over a discriminated
union of the registered models, so a body is decoded and validated in a single
pass (``validate_json``) and every way it can be malformed is told apart.
"""

from __future__ import annotations

import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated, Any, Generic, TypeVar, Union

from pydantic import Field, TypeAdapter, ValidationError

from sqs_consumer.dependencies import Dependency, as_dependency
from sqs_consumer.errors import PoisonMessageError
from sqs_consumer.idempotency.fingerprint import keep_sources
from sqs_consumer.kinds import QuarantineKind
from sqs_consumer.models.base import BaseEvent
from sqs_consumer.models.record import RecordInfo as RecordInfo  # noqa: PLC0414  # re-exported: see Handler
from sqs_consumer.versions import VERSION_FIELD, Upcaster, check_upcasters, declared_version, upcast, version_of

EventT = TypeVar("EventT", bound=BaseEvent)

# Reserved: never registered. Samples and tests of the unknown-type path use it, so adding an
# event type can never silently change what they exercise.
UNREGISTERED_TYPE = "example.unregistered"
# An unknown event_type is quoted in the reason only this far: the body carries it whole.
MAX_QUOTED_TYPE_CHARS = 200


# What a handler is: its signature names RecordInfo (models/record.py), which handlers written before it
# moved there import from here, so the registry re-exports it.
Handler = Callable[[EventT, RecordInfo], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class Route(Generic[EventT]):
    """One registration: an event model and the handler that processes it.

    ``timeout_seconds``: how long an async handler's awaitable may run before it is cancelled and its
    record retried (quarantined on its last receive, saying it timed out). Unset, it runs until the
    batch's handler deadline, within the time reserve (docs/design.md §4). A synchronous handler cannot
    be interrupted: only the function's own timeout stops it.

    ``upcasters``: when the model is at version N > 1 (its ``event_version`` literal), one pure function
    from each older version to the next, keyed by the version it reads (versions.py): a body of an older
    version is brought up to the model's before it is validated, so the handler always receives the model.

    ``slo_p99_ms`` and ``slo_max_age_s``: the event type's service levels, each an alarm of the stack when
    set: the 99th percentile of its handler time (ms) and the oldest age (s) a record may have when its
    batch starts, both per 5 minutes (infra/monitoring.py, docs/operations.md).

    ``dependencies``: the downstream services the handler calls (names, or ``Dependency`` with a health
    check). While one's circuit breaker is open the handler is not called: its records wait in the queue
    (docs/design.md §6).
    """

    model: type[EventT]
    handler: Handler[EventT]
    timeout_seconds: float | None = None
    upcasters: Mapping[int, Upcaster] = field(default_factory=dict)
    slo_p99_ms: float | None = None
    slo_max_age_s: float | None = None
    dependencies: Sequence[str | Dependency] = field(default=())

    def __post_init__(self) -> None:
        if self.timeout_seconds is not None and not self.timeout_seconds > 0:
            raise ValueError(f"{self.model.__name__}: timeout_seconds must be > 0, or None for the batch's deadline")
        check_upcasters(self.model, self.upcasters)
        for name in ("slo_p99_ms", "slo_max_age_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{self.model.__name__}: {name} must be > 0, or None for no alarm")
        if isinstance(self.dependencies, str):
            raise TypeError(f"{self.model.__name__}: dependencies is a list of names, not one string")
        declared = tuple(as_dependency(item) for item in self.dependencies)
        if len({item.name for item in declared}) != len(declared):
            raise ValueError(f"{self.model.__name__}: a dependency is named twice")
        object.__setattr__(self, "dependencies", declared)

    @property
    def dependency_names(self) -> tuple[str, ...]:
        return tuple(as_dependency(item).name for item in self.dependencies)

    @property
    def event_type(self) -> str:
        return event_type_of(self.model)

    @property
    def version(self) -> int:
        """The version of the event type this route's model is, and its handler receives."""
        return version_of(self.model)


def event_type_of(model: type[BaseEvent]) -> str:
    """The ``event_type`` literal a model accepts: written once, on the model."""
    annotation = model.model_fields["event_type"].annotation
    values = typing.get_args(annotation)
    if typing.get_origin(annotation) is not typing.Literal or len(values) != 1:
        raise TypeError(f"{model.__name__}.event_type must be a single Literal value")
    value = values[0]
    if not isinstance(value, str):
        raise TypeError(f"{model.__name__}.event_type must be a string literal")
    return value


class EventRegistry:
    """Maps event types to routes and parses bodies into the matching model."""

    def __init__(self, routes: Iterable[Route[Any]]) -> None:
        by_type: dict[str, Route[Any]] = {}
        for route in routes:
            if route.event_type in by_type:
                raise ValueError(f"event type {route.event_type!r} is registered twice")
            if route.event_type == UNREGISTERED_TYPE:
                raise ValueError(f"event type {UNREGISTERED_TYPE!r} is reserved for the unknown-type samples and tests")
            by_type[route.event_type] = route
        if not by_type:
            raise ValueError("an event registry needs at least one route")
        self._routes: Mapping[str, Route[Any]] = by_type

    @property
    def routes(self) -> Mapping[str, Route[Any]]:
        return self._routes

    @cached_property
    def dependencies(self) -> Mapping[str, Dependency]:
        """Every dependency some route declares, by name (a health check declared once counts for all)."""
        found: dict[str, Dependency] = {}
        for route in self._routes.values():
            for item in route.dependencies:
                dependency = as_dependency(item)
                if found.get(dependency.name) is None or found[dependency.name].health_check is None:
                    found[dependency.name] = dependency
        return found

    def __contains__(self, event_type: object) -> bool:
        return event_type in self._routes

    def route_for(self, event: BaseEvent) -> Route[Any]:
        return self._routes[event.event_type]

    @cached_property
    def adapter(self) -> TypeAdapter[BaseEvent]:
        """The discriminated union of every registered model (built on first use)."""
        models = tuple(route.model for route in self._routes.values())
        union: Any = models[0] if len(models) == 1 else Union[models]  # noqa: UP007
        if len(models) > 1:
            union = Annotated[union, Field(discriminator="event_type")]
        return TypeAdapter(union)

    def parse(self, body: str | bytes) -> BaseEvent:
        """Decode and validate a message body, or raise ``PoisonMessageError``: the current version of its
        type only (the consumer brings an older one up to it with ``upcast``)."""
        try:
            return self.validate_json(body)
        except ValidationError as exc:
            raise self.poison(exc) from exc

    @cached_property
    def validate_json(self) -> Callable[[str | bytes], BaseEvent]:
        """``parse`` without its wrapper, for the consumer's per-record path: pydantic's ``ValidationError``
        for a malformed body, which ``poison`` turns into the reason.

        The adapter's compiled validator itself: TypeAdapter.validate_json adds a Python call per record.
        """
        validate: Callable[[str | bytes], BaseEvent] = self.adapter.validator.validate_json
        return validate

    def upcast(self, refused: ValidationError, load: Callable[[], Any]) -> BaseEvent | None:
        """The event of a body the parse refused for its version, brought up to its route's model: None when
        the version was not the reason. ``load`` gives the decoded body, called only when the refusal does
        not carry it. Raises ``UnknownEventVersionError`` for a version newer than the route's, and
        ``PoisonMessageError`` when the upcast body is not a valid event."""
        found = _version_refused(refused, tagged=len(self._routes) > 1)
        if found is None:
            return None
        declared, document = found
        if declared is None:
            return None  # not a version (a text, a bool, 0): the field's own error says so
        if document is None:
            document = load()
        route = self._routes.get(str(document.get("event_type"))) if isinstance(document, dict) else None
        if route is None:
            return None
        through: dict[int, dict[str, Any]] = {}
        upcast_document = upcast(document, declared, route.version, route.upcasters, through)
        try:
            event: BaseEvent = self.adapter.validator.validate_python(upcast_document)
        except ValidationError as exc:
            poison = self.poison(exc)
            reason = f"upcast from event_version {declared} to {route.version}: {poison.reason}"
            raise PoisonMessageError(poison.kind, reason, route.event_type) from None
        keep_sources(event, through)  # a record stored before the deploy holds one of these versions' fingerprint
        return event

    def poison(self, exc: ValidationError) -> PoisonMessageError:
        """Why a body that ``validate_json`` refused cannot be processed."""
        return _classify(exc, tagged=len(self._routes) > 1)

    def json_schema(self) -> dict[str, Any]:
        """The event contract as JSON Schema, for producers in other languages."""
        return self.adapter.json_schema()


def _version_refused(refused: ValidationError, *, tagged: bool) -> tuple[int | None, Any] | None:
    """The version a refused body declares, and the body when the refusal carries it (it does when the
    field is absent); None when ``event_version`` is not among the refusal's reasons."""
    location = 1 if tagged else 0
    for error in refused.errors(include_url=False, include_context=False):
        loc = error["loc"]
        if len(loc) == location + 1 and loc[location] == VERSION_FIELD:
            if error["type"] == "missing":  # absent: version 1, and the input is the event itself
                return 1, error.get("input")
            return declared_version(error.get("input")), None
    return None


def _classify(exc: ValidationError, *, tagged: bool) -> PoisonMessageError:
    """Tell apart the ways a body can be malformed, for the quarantine reason."""
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    if first["type"] == "json_invalid":
        return PoisonMessageError(QuarantineKind.MALFORMED_JSON, first["msg"])
    if first["type"] == "union_tag_invalid":
        unknown = str((first.get("ctx") or {}).get("tag", ""))[:MAX_QUOTED_TYPE_CHARS]
        return PoisonMessageError(
            QuarantineKind.UNKNOWN_EVENT_TYPE, f"unknown event_type {unknown!r}", event_type=unknown
        )
    # With a discriminated union, a field error's location starts with the matched tag.
    skip = 1 if tagged else 0
    matched = str(first["loc"][0]) if tagged and first["loc"] else None
    fields = [error["loc"][skip:] for error in errors]
    detail = "; ".join(
        f"{'.'.join(str(part) for part in loc) or '<body>'}: {error['msg']}"
        for loc, error in zip(fields, errors, strict=True)
    )
    payload_only = all(loc and loc[0] == "payload" for loc in fields)
    return PoisonMessageError(
        QuarantineKind.INVALID_PAYLOAD if payload_only else QuarantineKind.INVALID_ENVELOPE, detail, event_type=matched
    )
