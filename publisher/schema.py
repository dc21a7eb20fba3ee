"""Prints the event contract as JSON Schema: `python -m publisher.schema` (see `make schema`)."""

from __future__ import annotations

import json
from typing import Any

from sqs_consumer.routes import REGISTRY


def event_schema() -> dict[str, Any]:
    schema = REGISTRY.json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "SQS consumer event",
        "description": "A message body: one of the registered event types, selected by event_type.",
        **schema,
    }


def render() -> str:
    return json.dumps(event_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(render(), end="")
