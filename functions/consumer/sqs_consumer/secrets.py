"""Secrets for handlers: read through the Powertools Parameters utility, cached, never at import.

A stage names the secrets its handlers may read (``secrets`` in cdk.json: the name handlers use
-> the Secrets Manager secret's name); the stack grants the function read access to those alone
and passes the mapping as ``SECRET_NAMES``. A handler calls ``get_secret("document_api_key")``:
the first call reads it, later ones within ``SECRETS_MAX_AGE_SECONDS`` answer from the cache.

The Parameters utility (and boto3 with it) is imported on the first read, so a function whose
handlers read no secret never pays for it on a cold start.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from sqs_consumer.budget import client_config
from sqs_consumer.errors import NonRetryableError
from sqs_consumer.settings import get_settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider


class SecretNotConfiguredError(NonRetryableError):
    """A handler asked for a secret its stage does not name: no retry can help."""


def configured(handle: str) -> bool:
    """Whether the stage names a secret for ``handle``."""
    return handle in get_settings().secret_names


def get_secret(handle: str) -> str:
    settings = get_settings()
    name = settings.secret_names.get(handle)
    if name is None:
        known = ", ".join(sorted(settings.secret_names)) or "none"
        raise SecretNotConfiguredError(
            f"no secret {handle!r} is configured for this function: add it to the stage's secrets in cdk.json "
            f"(configured: {known})"
        )
    value = _provider().get(name, max_age=settings.secrets_max_age_seconds)
    return str(value)


@cache
def _provider() -> SecretsProvider:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider  # noqa: PLC0415  # deferred: boto3

    return SecretsProvider(boto_config=client_config())
