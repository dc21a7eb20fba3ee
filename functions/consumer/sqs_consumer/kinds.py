"""Why a message is in the DLQ: the quarantine kinds, written once.

The consumer sends each quarantined copy with its kind in the ``quarantine.kind`` message attribute;
``sqs-dlq`` reads it back to choose what a redrive moves, and the table of kinds in docs/operations.md is checked
against this enum (tests/unit/test_quarantine_kinds.py). The values are on the wire (DLQ attributes,
dashboards, Logs Insights queries): never change one, only add.

Each kind says whether a redrive can fix it (``redrive_fixes``): True when the cause lies outside the
message (an outage, a permission, a deadline, state a handler depends on), so the same message can
succeed once that cause is gone; False when the message itself, or the object it points to, is
wrong, so it comes straight back unless the producer or the deployed code changes. A redrive moves
only the first by default. This module imports nothing of the pipeline: the command-line tools use it.
"""

from __future__ import annotations

from enum import StrEnum


class QuarantineKind(StrEnum):
    """The reason a message was sent to the DLQ (its ``quarantine.kind`` attribute)."""

    MALFORMED_JSON = "malformed_json"
    INVALID_ENVELOPE = "invalid_envelope"
    INVALID_PAYLOAD = "invalid_payload"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    UNKNOWN_EVENT_VERSION = "unknown_event_version"
    REUSED_EVENT_ID = "reused_event_id"
    PAYLOAD_MISSING = "payload_missing"
    PAYLOAD_UNREADABLE = "payload_unreadable"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    PAYLOAD_NOT_UTF8 = "payload_not_utf8"
    NON_RETRYABLE = "non_retryable"
    RETRIES_EXHAUSTED = "retries_exhausted"
    NOT_STARTED = "not_started"

    @property
    def redrive_fixes(self) -> bool:
        """A redrive can make it succeed without a change of the producer or the code."""
        return _KINDS[self][0]

    @property
    def description(self) -> str:
        """What the kind means, in one line (docs/operations.md's table shows it)."""
        return _KINDS[self][1]


# Per kind: does a redrive fix it, and what it means. Why each is what it is:
_KINDS: dict[QuarantineKind, tuple[bool, str]] = {
    # The message itself is wrong: its bytes will not change, so a redrive brings it straight back.
    QuarantineKind.MALFORMED_JSON: (False, "the body is not JSON"),
    QuarantineKind.INVALID_ENVELOPE: (
        False,
        "JSON, but not an event, nor SNS, EventBridge or an S3 pointer around one",
    ),
    QuarantineKind.INVALID_PAYLOAD: (False, "an event whose fields or payload fail its type's model"),
    # Fixed by deploying a route for the type: a code change, then an explicit --kind redrive.
    QuarantineKind.UNKNOWN_EVENT_TYPE: (False, "an `event_type` no route handles"),
    # Retried with backoff first (a newer consumer may be deploying); on its last receive the deployed code
    # still lacks the version: a deploy of it, then an explicit --kind redrive.
    QuarantineKind.UNKNOWN_EVENT_VERSION: (
        False,
        "an `event_version` newer than the consumer's, on every allowed receive",
    ),
    # A producer bug: the store still holds the other event under that id.
    QuarantineKind.REUSED_EVENT_ID: (False, "an `event_id` already processed with another type or payload"),
    # The object is gone (expired, deleted): a redrive reads the same pointer; only the producer can resend.
    QuarantineKind.PAYLOAD_MISSING: (False, "the offloaded payload's S3 object is gone"),
    # S3 refused the read (AccessDenied, a KMS key): once the permission is fixed, the same pointer reads.
    QuarantineKind.PAYLOAD_UNREADABLE: (True, "S3 refused the function the offloaded payload (a permission)"),
    # The object will not shrink: only a higher MAX_PAYLOAD_BYTES (a deploy, like a code change) lets it through.
    QuarantineKind.PAYLOAD_TOO_LARGE: (False, "the offloaded payload is over the function's `MAX_PAYLOAD_BYTES`"),
    # The object's bytes will not change.
    QuarantineKind.PAYLOAD_NOT_UTF8: (False, "the offloaded payload is not UTF-8 text"),
    # The handler's judgement of the state it met (a record it needs absent, a downstream refusal): the
    # on-call fixes that state, then redrives.
    QuarantineKind.NON_RETRYABLE: (True, "a handler raised `NonRetryableError`"),
    # An outage or a handler bug on every allowed receive: redriven once that is fixed.
    QuarantineKind.RETRIES_EXHAUSTED: (True, "failed on every allowed receive; the reason is its last error"),
    # It never ran (the deadline, a failed record ahead in its FIFO group): nothing says it cannot succeed.
    QuarantineKind.NOT_STARTED: (True, "never started on any allowed receive (the deadline, a FIFO group stopped)"),
}
