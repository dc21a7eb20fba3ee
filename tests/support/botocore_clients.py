"""botocore clients for tests, all from one session: a session loads a service's model on its first
client (about 0.1 s of CPU for S3), so a test that makes its own client costs milliseconds, not that.
Each client, and so each Stubber on it, is still the test's own."""

from __future__ import annotations

from functools import cache
from typing import Any

import botocore.session
from botocore.client import BaseClient


@cache
def _session() -> botocore.session.Session:
    return botocore.session.get_session()


def client(service: str, **kwargs: Any) -> BaseClient:
    """A new client of ``service`` (``create_client``'s keywords), its models loaded once a process."""
    return _session().create_client(service, **kwargs)
