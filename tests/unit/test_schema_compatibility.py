"""The schema gate: a model that breaks its released schema fails, naming the event type, version and field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from publisher.compatibility import problems
from publisher.releases import SCHEMA_DIR, mark_new, marked_new, new_path, released
from publisher.schema import check, event_schema, main, release
from sqs_consumer.models import BaseEvent
from sqs_consumer.models.record import RecordInfo
from sqs_consumer.registry import EventRegistry, Route
from sqs_consumer.routes import REGISTRY


def _noop(event: BaseEvent, record: RecordInfo) -> None:
    return None


# --- "invoice.paid" as released, and the changes made to it after --------------------------------------------


class InvoicePayload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    invoice_id: str
    amount_cents: int
    currency: Literal["EUR", "USD"] = "EUR"


class Invoice(BaseEvent):
    event_type: Literal["invoice.paid"]
    payload: InvoicePayload


class RetypedPayload(InvoicePayload):
    invoice_id: int  # type: ignore[assignment]  # the change under test


class Retyped(BaseEvent):
    event_type: Literal["invoice.paid"]
    payload: RetypedPayload


class WithoutAmountPayload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    invoice_id: str
    currency: Literal["EUR", "USD"] = "EUR"


class WithoutAmount(BaseEvent):
    event_type: Literal["invoice.paid"]
    payload: WithoutAmountPayload


class WithNotePayload(InvoicePayload):
    note: str | None = None


class WithNote(BaseEvent):
    event_type: Literal["invoice.paid"]
    payload: WithNotePayload


class NarrowedPayload(InvoicePayload):
    currency: Literal["EUR"] = "EUR"


class Narrowed(BaseEvent):
    event_type: Literal["invoice.paid"]
    payload: NarrowedPayload


class ForbiddingPayload(InvoicePayload):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Forbidding(BaseEvent):
    event_type: Literal["invoice.paid"]
    payload: ForbiddingPayload


class InvoiceV2Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    invoice_id: int
    amount: str = Field(description="a decimal, e.g. 12.50")


class InvoiceV2(BaseEvent):
    event_type: Literal["invoice.paid"]
    event_version: Literal[2]
    payload: InvoiceV2Payload


def _v1_to_v2(event: dict[str, Any]) -> dict[str, Any]:
    payload = event["payload"]
    amount = f"{payload['amount_cents'] / 100:.2f}"
    return {**event, "payload": {"invoice_id": int(payload["invoice_id"]), "amount": amount}}


def registry(model: type[BaseEvent], **route: Any) -> EventRegistry:
    return EventRegistry([Route(model, _noop, **route)])


@pytest.fixture
def schema_dir(tmp_path: Path) -> Path:
    """A schema folder where version 1 of invoice.paid was released."""
    release(registry(Invoice), tmp_path)
    assert set(released(tmp_path)) == {("invoice.paid", 1)}
    return tmp_path


def test_the_projects_models_are_compatible_with_their_released_schemas():
    # make test runs the gate through this test: make schema-check is the same check
    assert check(REGISTRY, SCHEMA_DIR) == []


def test_every_registered_type_has_its_current_versions_released_schema_or_is_marked_new():
    # A type that ships without its schema would never be compared: order.placed once did
    current = {(route.event_type, route.version) for route in REGISTRY.routes.values()}
    releases, new = set(released(SCHEMA_DIR)), marked_new(SCHEMA_DIR)

    assert current <= releases | new, f"neither released nor marked new: {sorted(current - releases - new)}"
    assert ("order.placed", 1) in releases
    assert new <= current - releases, f"marked new but released or not registered: {sorted(new - current)}"


def test_a_registered_version_neither_released_nor_marked_new_fails_naming_it(schema_dir: Path):
    # GIVEN version 2 of invoice.paid registered with its upcaster, neither released nor marked new
    found = check(registry(InvoiceV2, upcasters={1: _v1_to_v2}), schema_dir)

    # THEN the gate fails, naming the type, the version, and what to do
    assert found == [
        "invoice.paid v2: no released schema (schema/invoice.paid/v2.json): run `make schema-release` if it ships, "
        "or mark it new (schema/invoice.paid/v2.unreleased, as `make new-event` does)"
    ]


def test_a_new_type_marked_new_passes_until_released_then_is_compared(tmp_path: Path):
    # GIVEN invoice.paid marked new and never released
    mark_new("invoice.paid", 1, tmp_path)
    assert check(registry(Retyped), tmp_path) == []

    # WHEN it is released: its schema replaces the mark
    release(registry(Invoice), tmp_path)
    assert set(released(tmp_path)) == {("invoice.paid", 1)}
    assert not new_path(tmp_path, "invoice.paid", 1).exists()

    # THEN a breaking change to it fails the gate
    assert any("payload.invoice_id" in line for line in check(registry(Retyped), tmp_path))


def test_schema_check_command_fails_for_types_without_a_released_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    # GIVEN an empty schema folder: none of the project's types released or marked new
    assert main(["--check", "--schema-dir", str(tmp_path)]) == 1

    err = capsys.readouterr().err
    assert "schema-check: order.placed v1: no released schema (schema/order.placed/v1.json)" in err
    assert "a new version with an upcaster" not in err  # nothing breaks: it is only not released


def test_a_field_whose_type_changes_fails_naming_the_type_the_version_and_the_field(schema_dir: Path):
    found = check(registry(Retyped), schema_dir)

    assert found == [
        "invoice.paid v1: BACKWARD (the new consumer reads released messages): payload.invoice_id: the writer "
        "allows string, the reader does not",
        "invoice.paid v1: FORWARD (a released consumer reads the new model's messages): payload.invoice_id: the "
        "writer allows integer, the reader does not",
    ]


def test_a_removed_required_field_fails_forward(schema_dir: Path):
    found = check(registry(WithoutAmount), schema_dir)

    assert found == [
        "invoice.paid v1: FORWARD (a released consumer reads the new model's messages): payload.amount_cents: "
        "the reader requires it, the writer may leave it out"
    ]


def test_an_added_required_field_fails_backward(schema_dir: Path):
    # GIVEN the released model is the one without amount_cents; the new one requires it
    release_dir = schema_dir / "without"
    release(registry(WithoutAmount), release_dir)

    found = check(registry(Invoice), release_dir)

    assert found == [
        "invoice.paid v1: BACKWARD (the new consumer reads released messages): payload.amount_cents: the reader "
        "requires it, the writer may leave it out"
    ]


def test_an_added_optional_field_passes(schema_dir: Path):
    assert check(registry(WithNote), schema_dir) == []


def test_a_narrowed_enum_fails_backward_naming_the_value(schema_dir: Path):
    found = check(registry(Narrowed), schema_dir)

    assert found == [
        "invoice.paid v1: BACKWARD (the new consumer reads released messages): payload.currency: the writer "
        "allows 'USD', the reader does not"
    ]


def test_a_model_that_now_refuses_unnamed_fields_fails_backward(schema_dir: Path):
    found = check(registry(Forbidding), schema_dir)

    assert found == [
        "invoice.paid v1: BACKWARD (the new consumer reads released messages): payload: the writer allows fields "
        "it does not name, the reader refuses them"
    ]


def test_the_breaking_change_as_a_new_version_with_an_upcaster_passes(schema_dir: Path):
    # WHEN the same breaking change comes as version 2 with an upcaster from 1, marked new
    mark_new("invoice.paid", 2, schema_dir)
    assert check(registry(InvoiceV2, upcasters={1: _v1_to_v2}), schema_dir) == []

    # THEN it can be released beside version 1, and producers' schema has both versions
    release(registry(InvoiceV2, upcasters={1: _v1_to_v2}), schema_dir)
    assert set(released(schema_dir)) == {("invoice.paid", 1), ("invoice.paid", 2)}
    assert marked_new(schema_dir) == set()
    combined = event_schema(registry(InvoiceV2, upcasters={1: _v1_to_v2}), schema_dir)
    assert [ref["$ref"] for ref in combined["oneOf"]] == ["#/$defs/invoice.paid.v1", "#/$defs/invoice.paid.v2"]


def test_a_released_version_is_never_taken_back(schema_dir: Path):
    release(registry(InvoiceV2, upcasters={1: _v1_to_v2}), schema_dir)

    assert check(registry(Invoice), schema_dir) == [
        "invoice.paid v1: version 2 was released; a released version is never taken back"
    ]


def test_a_released_type_without_a_route_fails(schema_dir: Path):
    found = check(EventRegistry([REGISTRY.routes["hello"]]), schema_dir)

    assert found == [
        "hello v1: no released schema (schema/hello/v1.json): run `make schema-release` if it ships, or mark it "
        "new (schema/hello/v1.unreleased, as `make new-event` does)",
        "invoice.paid: released, but no route reads it: its messages would be unknown_event_type",
    ]


def test_release_refuses_while_the_check_fails(schema_dir: Path):
    with pytest.raises(ValueError, match=r"payload\.invoice_id"):
        release(registry(Retyped), schema_dir)
    assert json.loads((schema_dir / "invoice.paid" / "v1.json").read_text())["$defs"]["InvoicePayload"]["properties"][
        "invoice_id"
    ] == {"title": "Invoice Id", "type": "string"}


def test_schema_check_command_exits_0_on_the_project(capsys: pytest.CaptureFixture[str]):
    assert main(["--check"]) == 0
    assert "readable by and from their released versions" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("writer", "reader", "expected"),
    [
        pytest.param({"type": "integer"}, {"type": "number"}, [], id="integer-is-a-number"),
        pytest.param({"type": "number"}, {"type": "integer"},
                     ["<event>: the writer allows number, the reader does not"], id="number-is-not-an-integer"),
        pytest.param({"anyOf": [{"type": "string"}, {"type": "null"}]}, {"type": "string"},
                     ["<event>: the writer allows null, the reader does not"], id="optional-to-required-type"),
        pytest.param({"type": "array", "items": {"type": "string"}}, {"type": "array", "items": {"type": "integer"}},
                     ["<event>[]: the writer allows string, the reader does not"], id="array-items"),
        pytest.param({"type": "string"}, {"enum": ["a", "b"]},
                     ["<event>: the reader takes only 'a', 'b', the writer any value"], id="enum-from-any-string"),
    ],
)  # fmt: skip
def test_compatibility_rules_on_schema_fragments(writer: dict[str, Any], reader: dict[str, Any], expected: list[str]):
    assert problems(writer=writer, reader=reader) == expected
