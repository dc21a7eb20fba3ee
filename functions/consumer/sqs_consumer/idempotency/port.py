"""What the pipeline asks of an idempotency store, and the answers it gets.

The pipeline imports this module only; ``dynamodb.py`` implements it on DynamoDB, and the
test kit's in-memory store (testing/fakes.py) implements it in memory.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqs_consumer.budget import Deadline
from sqs_consumer.models.base import BaseEvent
from sqs_consumer.models.followups import FollowUp

REUSED_REASON = "event_id reused with a different payload"


class EventInProgressError(Exception):
    """Another execution is processing the same event: retry no sooner than ``retry_after_seconds``."""

    def __init__(self, message: str, retry_after_seconds: int = 0) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class StoreUnavailableError(Exception):
    """The idempotency store did not answer in time: the record is retried."""


class ClaimState(enum.Enum):
    ACQUIRED = "acquired"  # run the handler
    DUPLICATE = "duplicate"  # completed before: acknowledge
    IN_PROGRESS = "in_progress"  # held elsewhere: retry after it expires
    REUSED = "reused"  # same event_id, other type or payload: quarantine
    UNAVAILABLE = "unavailable"  # the store failed: retry


@dataclass(frozen=True, slots=True)
class Claim:
    """The store's answer for one event.

    ``token`` (acquired): the claim's identity, which a release must still find in the store.
    ``stored_fingerprint`` and ``stored`` (reused): the fingerprint of the event the store holds under
    this ``event_id``, and the claim an event matching it would get, so that a copy in the same batch
    is judged against the stored event, never against a third record; ``stored_version``: the version of
    the event type that fingerprint is of (fingerprint.py).
    ``pending`` (duplicate): the follow-ups stored with the completion and not yet marked sent.
    """

    state: ClaimState
    error: Exception | None = None
    token: int | None = None
    stored_fingerprint: str | None = None
    stored: Claim | None = None
    stored_version: int = 1
    pending: tuple[FollowUp, ...] = ()


@dataclass(frozen=True, slots=True)
class Held:
    """An in-progress record this execution wrote, to release: the event and its claim's token."""

    event: BaseEvent
    token: int | None


class Idempotency(Protocol):
    def claim(self, events: Sequence[BaseEvent], remaining_ms: int, deadline: Deadline) -> list[Claim]:
        """One claim per event (distinct event_ids), in order."""

    def settle(
        self,
        succeeded: Sequence[BaseEvent],
        released: Sequence[Held],
        deadline: Deadline,
        followups: Mapping[str, Sequence[FollowUp]] | None = None,
    ) -> int:
        """Mark ``succeeded`` completed and delete ``released``'s own in-progress records; never raise.

        ``followups``: by event_id, the follow-ups a completion keeps until they are sent, in the same
        write (a completion written again with fewer or none marks them sent).
        Returns how many of the completions were not confirmed by the deadline."""
