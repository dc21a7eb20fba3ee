"""Calling a downstream HTTP service from a handler, with its failures classified for the pipeline.

``post_json("orders-api", url, body, headers)`` answers the response, or raises:

- ``DependencyUnavailable`` when the service cannot answer now: no connection (refused, reset, DNS),
  a timeout, 408, 429 or any 5xx, with the ``Retry-After`` it sent (seconds or an HTTP date). The
  record is retried and the dependency's circuit breaker counts a failure (docs/design.md §6).
- ``DownstreamRefusedError`` (a ``NonRetryableError``) for any other 4xx, and for a redirect (a POST
  is never re-sent to another address): the service understood and refused; the record is
  quarantined at once as ``non_retryable`` with the status and the start of the answer.

The standard library's ``urllib.request``: nothing to import at cold start beyond what Python has,
no connection pool to keep across a SnapStart restore (docs/design.md §6).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from sqs_consumer.errors import DependencyUnavailable, NonRetryableError, describe

if TYPE_CHECKING:
    import urllib.error
    import urllib.request

DEFAULT_TIMEOUT_SECONDS = 5.0
# How much of an error answer is quoted in the exception (the DLQ reason): enough to see why.
QUOTED_ANSWER_BYTES = 512
# Statuses that say "not now" rather than "never": the request may succeed later as it is.
_UNAVAILABLE_STATUSES = frozenset({408, 425, 429})


class DownstreamRefusedError(NonRetryableError):
    """The service answered a 4xx (but 408, 425, 429) or a redirect: retrying the same request cannot help."""

    def __init__(self, dependency: str, status: int, answer: str) -> None:
        super().__init__(f"{dependency} refused the request: HTTP {status}: {answer}")
        self.dependency = dependency
        self.status = status


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    headers: Mapping[str, str]

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def post_json(
    dependency: str,
    url: str,
    body: object,
    headers: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> Response:
    """POST ``body`` as JSON (a pydantic model as its JSON) and answer a 2xx response, or raise (module doc)."""
    import http.client  # noqa: PLC0415  # deferred: urllib.request imports ssl, not paid at cold start
    import urllib.error  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    data = body.model_dump_json().encode() if hasattr(body, "model_dump_json") else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST")  # noqa: S310  # the handler's own URL
    request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with _opener().open(request, timeout=timeout) as answer:
            return Response(answer.status, answer.read(), dict(answer.headers.items()))
    except urllib.error.HTTPError as exc:
        raise _classified(dependency, exc) from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:  # TimeoutError is an OSError
        raise DependencyUnavailable(dependency, _transport_reason(exc)) from exc


def _classified(dependency: str, exc: urllib.error.HTTPError) -> Exception:
    status = exc.code
    answer = _quoted(exc)
    if status >= 500 or status in _UNAVAILABLE_STATUSES:
        retry_after = retry_after_seconds(exc.headers.get("Retry-After") if exc.headers else None)
        return DependencyUnavailable(dependency, f"HTTP {status}: {answer}", retry_after)
    return DownstreamRefusedError(dependency, status, answer)


def _quoted(exc: urllib.error.HTTPError) -> str:
    import http.client  # noqa: PLC0415

    try:
        text = exc.read(QUOTED_ANSWER_BYTES).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException, ValueError):
        text = ""
    return " ".join(text.split()) or (exc.reason if isinstance(exc.reason, str) else "") or "(no body)"


def _transport_reason(exc: BaseException) -> str:
    import urllib.error  # noqa: PLC0415

    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, TimeoutError):  # socket.timeout is TimeoutError
        return "timed out"
    return describe(reason) if isinstance(reason, BaseException) else str(reason)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date; ``None`` when absent or unreadable."""
    if not value:
        return None
    import email.utils  # noqa: PLC0415

    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, math.ceil(seconds)) if math.isfinite(seconds) else None


@cache
def _opener() -> urllib.request.OpenerDirector:
    import urllib.request  # noqa: PLC0415

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        """A redirect is an answer (a ``DownstreamRefusedError``), never a POST re-sent elsewhere."""

        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    return urllib.request.build_opener(NoRedirect())
