"""Exceptions that decide a record's disposition.

Delivery is at-least-once. A handler that raises any exception other than
``NonRetryableError`` leaves the message on the queue: it comes back after its
retry backoff, and on its last allowed receive (``maxReceiveCount``) it is
quarantined to the DLQ with the last error as its reason. ``NonRetryableError``
says that retrying can never succeed, so the message is quarantined at once.
"""

from __future__ import annotations


class RetryableError(Exception):
    """A transient failure: the message is retried after the visibility timeout.

    Any exception other than ``NonRetryableError`` is treated the same way; this
    class only makes the intent explicit in handlers.
    """


class NonRetryableError(Exception):
    """A failure that retrying cannot fix: the message is quarantined to the DLQ."""


class PoisonMessageError(Exception):
    """The body cannot become a typed event (bad JSON, envelope, payload or type)."""

    def __init__(self, kind: str, reason: str, event_type: str | None = None) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.event_type = event_type


class DeadlineReachedError(Exception):
    """The function is too close to its timeout to start this record."""


class HandlerAbortedError(Exception):
    """A handler raised a ``BaseException`` that is not a process exit (``asyncio.CancelledError``...).

    It is contained to its record, as a retryable failure, instead of failing the whole batch.
    """


class QuarantineFailedError(Exception):
    """The DLQ did not accept a quarantined message; the record is retried instead."""


class SettingsError(ValueError):
    """The function's environment does not hold valid settings."""
