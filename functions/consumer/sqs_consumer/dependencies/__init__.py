"""Downstream services that handlers call: declared on their routes, guarded by a breaker and a rate.

A route names what its handler depends on (``Route(OrderPlacedEvent, handle_order_placed,
dependencies=["orders-api"])``); a handler says a dependency cannot answer by raising
``DependencyUnavailable`` (``sqs_consumer.errors``; ``sqs_consumer.http.post_json`` does it for HTTP).
Each dependency has a circuit breaker shared by every instance of the function, and may have a rate
limit (docs/design.md §6). A ``Dependency`` declares what a bare name cannot: how to check the service's
health when a probe asks whether it is back.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

# A name is part of store keys, metric dimensions and schedule names: short, lower case, no separators.
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")

HealthCheck = Callable[[], None]
# The key of the event EventBridge Scheduler invokes the function with for a probe (control.py).
PROBE_KEY = "sqs_consumer_probe"


@dataclass(frozen=True, slots=True)
class Dependency:
    """A downstream service. ``health_check``: called by a probe; returns when the service answers, raises
    (``DependencyUnavailable`` or anything) when not. Without one, a probe lets one trial batch through."""

    name: str
    health_check: HealthCheck | None = None

    def __post_init__(self) -> None:
        if not NAME_PATTERN.fullmatch(self.name):
            raise ValueError(
                f"dependency name {self.name!r}: 1-40 characters of a-z, 0-9 and '-', starting with a letter or digit"
            )


def as_dependency(declared: str | Dependency) -> Dependency:
    return declared if isinstance(declared, Dependency) else Dependency(declared)
