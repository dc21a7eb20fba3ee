"""The committed JSON Schema is generated from the models and accepts what they accept."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from pydantic import ValidationError

from publisher.schema import render
from sqs_consumer.errors import PoisonMessageError, UnknownEventVersionError
from sqs_consumer.routes import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "schema" / "events.schema.json"
BODIES = [
    record["body"]
    for path in sorted((ROOT / "events").glob("*.json"))
    if not path.name.endswith(".expected.json")
    for record in json.loads(path.read_text())["Records"]
    if not record["body"].startswith('{"event_id": "evt_bad_json"')
]


def test_schema_file_matches_the_models():
    assert SCHEMA_PATH.read_text() == render(), "the models changed: run `make schema` and commit the result"


@pytest.mark.parametrize("body", BODIES[:40])
def test_schema_and_models_agree_on_sample_bodies(body: str):
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))
    assert validator.is_valid(json.loads(body)) == consumer_accepts(body)


def consumer_accepts(body: str) -> bool:
    """The consumer's parse of an event alone: its current version, or an older one upcast."""
    try:
        REGISTRY.validate_json(body)
    except ValidationError as refused:
        try:
            return REGISTRY.upcast(refused, lambda: json.loads(body)) is not None
        except (PoisonMessageError, UnknownEventVersionError):
            return False
    return True
