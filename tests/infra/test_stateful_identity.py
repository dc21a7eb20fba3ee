"""Stateful resources keep their identity: every stage's templates match infra/stateful-resources.json.

A renamed construct id (on the resource's path: its own or a parent's) changes the logical id, and
CloudFormation deletes or orphans the queue, DLQ, table, bucket or topic and creates an empty one.
"""

from __future__ import annotations

from typing import Any

import pytest
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER  # type: ignore[import-untyped]  # cfn-lint ships no types

from infra import identity


@pytest.fixture(scope="module")
def templates() -> dict[str, dict[str, Any]]:
    """Every stage of cdk.json, synthesized as `cdk synth` does."""
    return identity.synthesize()


def test_stateful_resources_of_every_stage_keep_the_recorded_logical_ids_and_names(templates):
    # GIVEN the record of every stage's stateful resources, and the stages' templates today
    recorded = identity.read_record()

    # WHEN the templates' stateful resources are compared with the record
    problems = identity.record_changes(recorded, identity.current_record(templates))

    # THEN none was renamed, replaced, added or dropped without the record saying so
    assert not problems, "\n".join(problems)


def test_replacement_rules_cover_each_resource_type_and_every_property_cloudformation_replaces_on(templates):
    # GIVEN every resource type the stages' templates use
    types = {resource["Type"] for template in templates.values() for resource in template["Resources"].values()}

    # WHEN each is looked up in the rules and in CloudFormation's registry schema (cfn-lint's copy)
    missing = sorted(types - identity.REPLACEMENT_PROPERTIES.keys())
    unlisted = {}
    for resource_type in sorted(types - {"AWS::CDK::Metadata"}):
        schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", resource_type).schema
        create_only = {pointer.split("/")[2] for pointer in schema.get("createOnlyProperties", [])}
        extra = create_only - set(identity.REPLACEMENT_PROPERTIES.get(resource_type, ()))
        if extra:
            unlisted[resource_type] = sorted(extra)

    # THEN every type has its rule, and each rule names every property whose change replaces the resource
    assert not missing, f"no replacement rule in infra/identity.py for {missing}"
    assert not unlisted, f"properties CloudFormation replaces on, missing from REPLACEMENT_PROPERTIES: {unlisted}"


def test_stateful_types_fix_their_physical_name_by_a_replacement_property():
    # GIVEN the stateful types (a name is what makes a new resource collide with a retained one)
    # THEN each one's name property is among those whose change replaces it
    for resource_type in identity.STATEFUL_TYPES:
        name = identity.NAME_PROPERTIES[resource_type]
        assert name in identity.REPLACEMENT_PROPERTIES[resource_type], resource_type
