"""The quarantine kinds are written once (sqs_consumer.kinds): the consumer, sqs-dlq and docs/operations.md agree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from operations.dlq import main
from operations.redrive import KNOWN_KINDS, OUT_OF_RETRIES, POISON_KINDS, KindFilter, kinds_table
from sqs_consumer import registry
from sqs_consumer.kinds import QuarantineKind

ROOT = Path(__file__).resolve().parents[2]

# On the wire (the DLQ's quarantine.kind attribute, dashboards, saved queries): these never change.
WIRE_VALUES = {
    "MALFORMED_JSON": "malformed_json", "INVALID_ENVELOPE": "invalid_envelope", "INVALID_PAYLOAD": "invalid_payload",
    "UNKNOWN_EVENT_TYPE": "unknown_event_type", "UNKNOWN_EVENT_VERSION": "unknown_event_version",
    "REUSED_EVENT_ID": "reused_event_id",
    "PAYLOAD_MISSING": "payload_missing", "PAYLOAD_UNREADABLE": "payload_unreadable",
    "PAYLOAD_TOO_LARGE": "payload_too_large", "PAYLOAD_NOT_UTF8": "payload_not_utf8",
    "NON_RETRYABLE": "non_retryable", "RETRIES_EXHAUSTED": "retries_exhausted", "NOT_STARTED": "not_started",
}  # fmt: skip


def test_the_wire_values_are_unchanged_and_written_once():
    assert {kind.name: kind.value for kind in QuarantineKind} == WIRE_VALUES
    assert not any(hasattr(registry, name) for name in WIRE_VALUES), "the kinds have one home: sqs_consumer.kinds"


def test_every_kind_says_whether_a_redrive_fixes_it_and_what_it_means():
    fixes = {kind.value for kind in QuarantineKind if kind.redrive_fixes}
    assert fixes == {"payload_unreadable", "non_retryable", "retries_exhausted", "not_started"}
    assert all(kind.description for kind in QuarantineKind)


def test_redrive_knows_every_kind_and_skips_by_default_those_a_redrive_cannot_fix():
    assert {*WIRE_VALUES.values(), OUT_OF_RETRIES} == KNOWN_KINDS
    default = KindFilter()
    assert {kind for kind in KNOWN_KINDS if not default.selects(kind)} == POISON_KINDS
    assert {"payload_missing", "payload_too_large", "payload_not_utf8"} <= POISON_KINDS
    assert default.selects("payload_unreadable")
    assert default.selects(OUT_OF_RETRIES)


@pytest.mark.parametrize("kind", sorted(KNOWN_KINDS))
def test_sqs_dlq_redrive_accepts_every_kind(kind, monkeypatch):
    # The arguments are valid: the run gets as far as making its client (stopped there).
    monkeypatch.setattr("operations.dlq._run", lambda args: 0 if args.kinds == [kind] else 3)
    assert main(["redrive", "--dlq-arn", "arn:aws:sqs:us-east-1:123456789012:dlq", "--kind", kind]) == 0


def test_the_docs_table_of_kinds_is_the_enum():
    operations = (ROOT / "docs" / "operations.md").read_text()
    table = kinds_table()
    assert table in operations, (
        f"docs/operations.md's table of quarantine kinds differs from sqs_consumer.kinds:\n{table}"
    )


def test_the_kinds_module_imports_nothing_of_the_pipeline():
    code = "import sys, sqs_consumer.kinds; print(sorted(m for m in sys.modules if m.startswith('sqs_consumer')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT / "functions" / "consumer", capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    assert out.strip() == "['sqs_consumer', 'sqs_consumer.kinds']"
