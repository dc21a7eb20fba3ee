"""Secrets for handlers: read through the Powertools Parameters utility, cached, never at import.

A stage names the secrets its handlers may read (``secrets`` in cdk.json: the name handlers use
-> the Secrets Manager secret's name); the stack grants the function read access to those alone
and passes the mapping as ``SECRET_NAMES``, which the entry point hands to ``configure``. A
handler calls ``get_secret("document_api_key")``: the first call reads it, later ones within
``SECRETS_MAX_AGE_SECONDS`` answer from the cache.

The Parameters utility (and boto3 with it) is imported on the first read, so a function whose
handlers read no secret never pays for it on a cold start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING

from sqs_consumer.budget import client_config
from sqs_consumer.errors import NonRetryableError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider


class SecretNotConfiguredError(NonRetryableError):
    """A handler asked for a secret its stage does not name: no retry can help."""


@dataclass
class _Configuration:
    names: dict[str, str] = field(default_factory=dict)
    max_age_seconds: int = 300


_configuration = _Configuration()


def configure(names: Mapping[str, str], max_age_seconds: int) -> None:
    """The secrets of this function (handle -> secret name) and their cache's max age (handler.py)."""
    _configuration.names = dict(names)
    _configuration.max_age_seconds = max_age_seconds


def configured(handle: str) -> bool:
    """Whether the stage names a secret for ``handle``."""
    return handle in _configuration.names


def get_secret(handle: str) -> str:
    name = _configuration.names.get(handle)
    if name is None:
        known = ", ".join(sorted(_configuration.names)) or "none"
        raise SecretNotConfiguredError(
            f"no secret {handle!r} is configured for this function: add it to the stage's secrets in cdk.json "
            f"(configured: {known})"
        )
    value = _provider().get(name, max_age=_configuration.max_age_seconds)
    return str(value)


@cache
def _provider() -> SecretsProvider:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider  # noqa: PLC0415  # deferred: boto3

    return SecretsProvider(boto_config=client_config())
