"""A follow-up event a handler emitted: what the idempotency store keeps with its parent's completion
until it is sent (docs/design.md §4, "Follow-up events"). Shapes only: followups.py builds and sends them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class FollowUp:
    """One event for one declared destination: ``to`` is the destination's name (its queue URL is the
    function's setting), ``event_id`` the id derived from the parent's (``parent``), ``body`` the event as JSON.
    ``trace_header`` is the parent record's ``AWSTraceHeader``, sent with it; not stored: a duplicate that
    sends what is left has the same message, so the same header, to give it again."""

    to: str
    event_id: str
    body: str
    parent: str
    trace_header: str | None = None

    def stored(self) -> dict[str, str]:
        return {"to": self.to, "event_id": self.event_id, "body": self.body, "parent": self.parent}


def dump_followups(followups: tuple[FollowUp, ...] | list[FollowUp]) -> str:
    """The follow-ups as the store keeps them: one JSON array."""
    return json.dumps([followup.stored() for followup in followups], separators=(",", ":"))


def load_followups(text: str | None) -> tuple[FollowUp, ...]:
    """What ``dump_followups`` wrote; nothing for a record that holds none."""
    if not text:
        return ()
    entries: list[dict[str, Any]] = json.loads(text)
    return tuple(
        FollowUp(str(entry["to"]), str(entry["event_id"]), str(entry["body"]), str(entry["parent"]))
        for entry in entries
    )
