"""Exceptions that decide a record's disposition.

Delivery is at-least-once. A handler that raises any exception other than
``NonRetryableError`` leaves the message on the queue: it comes back after its
retry backoff, and on its last allowed receive (``maxReceiveCount``) it is
quarantined to the DLQ with the last error as its reason. ``NonRetryableError``
says that retrying can never succeed, so the message is quarantined at once.
"""

from __future__ import annotations

from collections.abc import Callable


class RetryableError(Exception):
    """A transient failure: the message is retried after the visibility timeout.

    Any exception other than ``NonRetryableError`` is treated the same way; this
    class only makes the intent explicit in handlers.
    """


class NonRetryableError(Exception):
    """A failure that retrying cannot fix: the message is quarantined to the DLQ."""


class DependencyUnavailable(Exception):
    """A downstream service the handler depends on cannot answer now (down, overloaded, throttling).

    Retryable, and more: it counts as a failure of ``dependency``'s circuit breaker (docs/design.md §6).
    While that breaker is open the records of routes depending on it wait in the queue instead of
    spending their receives, and one on its last allowed receive is sent again rather than quarantined.
    ``retry_after``: seconds the dependency asked for (an HTTP ``Retry-After``), or ``None``.
    """

    def __init__(self, dependency: str, reason: str, retry_after: float | None = None) -> None:
        super().__init__(f"{dependency} unavailable: {reason}")
        self.dependency = dependency
        self.reason = reason
        self.retry_after = retry_after if retry_after is None or retry_after >= 0 else None


class HeldBackError(DependencyUnavailable):
    """A record not started for its dependency's sake: it waits in the queue, and its handler never failed."""


class BreakerOpenError(HeldBackError):
    """Held back: the circuit breaker of a dependency of its route is open."""


class RateLimitedError(HeldBackError):
    """Held back: a dependency of its route is at its rate limit, and the batch's time ran out waiting."""


class PoisonMessageError(Exception):
    """The body cannot become a typed event (bad JSON, envelope, payload or type)."""

    def __init__(self, kind: str, reason: str, event_type: str | None = None) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.event_type = event_type


class UnknownEventVersionError(Exception):
    """The body declares a version of its event type newer than this consumer's: retried with backoff (a
    newer consumer may be deploying), quarantined as ``unknown_event_version`` on its last receive."""

    def __init__(self, event_type: str, declared: int, current: int) -> None:
        super().__init__(f"event_version {declared} of {event_type!r} is newer than this consumer's version {current}")
        self.event_type = event_type
        self.declared = declared
        self.current = current


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


class HandlerUnfinishedError(Exception):
    """A handler was called and did not finish: what it started may still be running.

    Retryable. Its idempotency claim is kept until it expires rather than released, so that no other
    execution runs the event meanwhile: the retry comes no sooner than ``retry_after_seconds``.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.retry_after_seconds = 0


class HandlerTimeoutError(HandlerUnfinishedError):
    """An async handler did not finish within its route's timeout or the batch's handler deadline."""


class HandlerReturnError(HandlerUnfinishedError):
    """A handler returned something that is neither ``None`` nor an awaitable: whatever work it stands
    for (a generator, an async generator, a ``concurrent.futures.Future``) was never awaited here."""


class FollowUpError(Exception):
    """A follow-up the handler tried to emit cannot be: its destination is not declared for this consumer
    (a retry after a deploy that declares it succeeds), or no destinations are configured at all."""


class FollowUpTooLargeError(NonRetryableError):
    """A follow-up, or all of a record's together, larger than the store or SQS can hold: quarantined."""


class FollowUpsNotSentError(Exception):
    """A record's follow-ups were stored with its completion but not all sent: the record is retried, and its
    next delivery, acknowledged as a duplicate, sends what is left."""


# A description is cut to this many characters: an exception's message may carry a whole payload.
MAX_DESCRIPTION_CHARS = 2_048
_CUT = " [...]"


def describe(exc: BaseException, *, typed: bool = True) -> str:
    """``"TypeName: message"`` (``"TypeName"`` when the message is empty; the message alone when not
    ``typed``), at most ``MAX_DESCRIPTION_CHARS`` long, and never an exception of its own.

    Every exception the function turns into text goes through here: a handler's exception whose
    ``__str__`` raises, returns a non-string or loops must fail its own record, never the batch.
    Falls back to ``repr``, then to the type's name. Only a process exit (``KeyboardInterrupt``,
    ``SystemExit``) raised by ``__str__`` itself goes through, as anywhere else in the function.
    """
    name = _type_name(exc)
    message = _text(str, exc)
    if message is None:
        message = _text(repr, exc)
        if message is None:
            return name
        typed = False  # a repr names the type already
    text = (f"{name}: {message}" if message else name) if typed else (message or name)
    if len(text) > MAX_DESCRIPTION_CHARS:
        return text[: MAX_DESCRIPTION_CHARS - len(_CUT)] + _CUT
    return text


def _text(convert: Callable[[object], str], exc: BaseException) -> str | None:
    try:
        text = convert(exc)
        if type(text) is str:
            return text
        # A str subclass may override what slicing or formatting do: a plain copy of its characters.
        return str.__getitem__(text, slice(None)) if isinstance(text, str) else None
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # whatever __str__ or __repr__ raises is the exception's own bug
        return None


def _type_name(exc: BaseException) -> str:
    try:
        name = type(exc).__name__
        return name if type(name) is str else "Exception"
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # a metaclass's __name__ that raises
        return "Exception"
