"""When two events are the same event: the fingerprint the store keeps beside each ``event_id``.

The record is looked up by ``event_id`` (as before, so a deployed table keeps its records) and
carries a fingerprint of ``[event_type, payload]`` in Powertools' payload-validation attribute: of
the canonical event (defaults included, JSON mode, sorted keys), so that events equal in meaning
match however the producer wrote them (``fingerprint``). The event is the validated model, after an
older version's body was upcast to it (versions.py): a re-send of the same event in an older shape
matches, and ``event_version`` is not covered, so records written before versions existed match too.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqs_consumer.models.base import BaseEvent

# What the fingerprint covers, as Powertools' payload_validation_jmespath: a reused event_id with
# another type or payload is told apart.
FINGERPRINT_JMESPATH = "[event_type, payload]"


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


def same_event(stored_fingerprint: str, event: BaseEvent) -> bool:
    """Whether a stored fingerprint is ``event``'s: canonical, or as releases before the canonical one
    wrote it (the fields the producer sent), so their records still match, however the producer
    writes the event now: the fields it sent, or those that differ from their defaults."""
    if stored_fingerprint == fingerprint(event):
        return True
    for earlier in ({"exclude_unset": True}, {"exclude_defaults": True}):
        sent = event.model_dump(mode="json", include={"event_type", "payload"}, **earlier)  # type: ignore[arg-type]
        if stored_fingerprint == powertools_hash([sent.get("event_type"), sent.get("payload")]):
            return True
    return False
