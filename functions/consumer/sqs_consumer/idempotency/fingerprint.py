"""When two events are the same event: the fingerprint the store keeps beside each ``event_id``.

The record is looked up by ``event_id`` (as before, so a deployed table keeps its records) and
carries a fingerprint of ``[event_type, payload]`` in Powertools' payload-validation attribute: of
the canonical event (defaults included, JSON mode, sorted keys), so that events equal in meaning
match however the producer wrote them (``fingerprint``). The event is the validated model, after an
older version's body was upcast to it (versions.py): a re-send of the same event in an older shape
matches, and ``event_version`` is not covered, so records written before versions existed match too.

A fingerprint is of one version of the event type: the version of the consumer that wrote it, stored
beside it when above 1 (absent: 1, so the records of a type that never moved on are written and read
as before). A record written before a deploy that moved its type on holds the older version's
fingerprint: it is compared like with like (``same_event``), with the fingerprint of the body as it
was sent at that version, which the upcast kept (``keep_sources``); a body that never was at the
stored version cannot be compared, and is not the same event (docs/decisions/065-event-versions.md).
"""

from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Mapping
from typing import Any

from sqs_consumer.models.base import BaseEvent

# What the fingerprint covers, as Powertools' payload_validation_jmespath: a reused event_id with
# another type or payload is told apart.
FINGERPRINT_JMESPATH = "[event_type, payload]"

# An upcast event's body at each version it went through, fingerprinted as sent, by id(event); an entry
# lives as long as its event. Only bodies of an older version come here: never the per-record fast path.
_SOURCES: dict[int, dict[int, str]] = {}


def powertools_hash(data: Any) -> str:
    """Powertools' ``_generate_hash`` with its default hash function (md5): of the sorted JSON."""
    return hashlib.md5(json.dumps(data, sort_keys=True).encode(), usedforsecurity=False).hexdigest()


def event_data(event: BaseEvent) -> dict[str, Any]:
    """The canonical event the key and the fingerprint are computed from: defaults included, JSON mode.

    ``{"name": "x"}`` and ``{"name": "x", "delay_ms": 0}`` are the same event and get the same
    fingerprint. It is also what Powertools' ``@idempotent_function`` hashes when given the event
    model itself, for payloads of JSON types (docs/decisions/017-idempotency-per-batch.md says what interoperates).
    """
    return event.model_dump(mode="json", include={"event_id", "event_type", "payload"})


def fingerprint(event: BaseEvent) -> str:
    """Powertools' payload hash of ``[event_type, payload]`` over the canonical event."""
    data = event_data(event)
    return powertools_hash([data["event_type"], data["payload"]])


def keep_sources(event: BaseEvent, documents: Mapping[int, Mapping[str, Any]]) -> None:
    """Keep, for the life of ``event`` (upcast), the fingerprint of its body at each older version it went
    through: the JSON object as sent, or as the upcasters made it, by version."""
    key = id(event)
    _SOURCES[key] = {
        version: powertools_hash([document.get("event_type"), document.get("payload")])
        for version, document in documents.items()
    }
    weakref.finalize(event, _SOURCES.pop, key, None)


def comparable(event: BaseEvent, version: int) -> bool:
    """Whether ``event`` can be compared with a fingerprint of ``version``: its own, or one its body was at."""
    return version == event.event_version or version in _SOURCES.get(id(event), {})


def same_event(stored_fingerprint: str, event: BaseEvent, stored_version: int = 1) -> bool:
    """Whether a stored fingerprint, of version ``stored_version`` of the event type, is ``event``'s.

    Of ``event``'s version: canonical, or as releases before the canonical one wrote it (the fields the
    producer sent), so their records still match, however the producer writes the event now: the
    fields it sent, or those that differ from their defaults. Of another version: the body's own as it
    was at that version, when it was (an upcast body, sent at that version or before); otherwise it
    cannot be told the same, and is not."""
    if stored_version != event.event_version:
        return _SOURCES.get(id(event), {}).get(stored_version) == stored_fingerprint
    if stored_fingerprint == fingerprint(event):
        return True
    for earlier in ({"exclude_unset": True}, {"exclude_defaults": True}):
        sent = event.model_dump(mode="json", include={"event_type", "payload"}, **earlier)  # type: ignore[arg-type]
        if stored_fingerprint == powertools_hash([sent.get("event_type"), sent.get("payload")]):
            return True
    return False
