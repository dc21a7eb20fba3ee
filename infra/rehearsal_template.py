"""A synthesized template cut down to what LocalStack community deploys: the rehearsal's input.

Kept: the resources of the services LocalStack runs here (infra/localstack.py's SERVICES): queues and
their policies, SNS topics and subscriptions between them, IAM roles and policies, buckets, log groups,
alarms, dashboards, EventBridge rules. Left out, and listed: every other type (Lambda functions, their
mappings, permissions and versions need Docker; DynamoDB tables need Java; EC2 networking and custom
resources are not deployed by it) and metric filters (it has no provider for them: it reports them
created and makes nothing); then, to a fixed point, every resource whose properties refer to one left
out (the function's alarms, its role's policy on the table). A ``DependsOn`` on a left-out resource is
dropped (ordering only), and so are outputs that refer to one. The CDK bootstrap's version check
(parameter ``BootstrapVersion``, rule ``CheckBootstrapVersion``) goes too: LocalStack has no bootstrap.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from infra.upgrade_check import _references as references

# The CloudFormation service prefixes of the resource types LocalStack deploys in a rehearsal.
DEPLOYED_SERVICES = frozenset({"SQS", "SNS", "IAM", "S3", "Logs", "CloudWatch", "Events"})
# Types of those services that LocalStack community has no provider for.
NOT_PROVIDED = frozenset({"AWS::Logs::MetricFilter"})
BOOTSTRAP_PARAMETER = "BootstrapVersion"


@dataclass(frozen=True)
class Filtered:
    """The template LocalStack deploys, and what was left out of it and why."""

    template: dict[str, Any]
    unsupported: dict[str, str] = field(default_factory=dict)  # logical id -> type
    dependent: dict[str, str] = field(default_factory=dict)  # logical id -> type

    def summary(self) -> str:
        if not self.unsupported:
            return "nothing left out"
        types = Counter(self.unsupported.values())
        kinds = ", ".join(f"{name} x{count}" for name, count in sorted(types.items()))
        return (f"{len(self.unsupported)} resource(s) LocalStack does not run ({kinds}) and "
                f"{len(self.dependent)} that refer to them")  # fmt: skip


def deployable(resource_type: str) -> bool:
    parts = resource_type.split("::")
    return len(parts) == 3 and parts[0] == "AWS" and parts[1] in DEPLOYED_SERVICES and resource_type not in NOT_PROVIDED


def filter_template(template: Mapping[str, Any]) -> Filtered:
    """``template`` without what LocalStack cannot deploy (see the module's docstring)."""
    result = copy.deepcopy(dict(template))
    resources: dict[str, Any] = result.get("Resources", {})
    unsupported = {lid: r["Type"] for lid, r in resources.items() if not deployable(r["Type"])}
    dependent: dict[str, str] = {}
    gone = set(unsupported)
    while True:
        more = {lid: r["Type"] for lid, r in resources.items()
                if lid not in gone and references(r.get("Properties") or {}) & gone}  # fmt: skip
        if not more:
            break
        dependent.update(more)
        gone |= set(more)
    result["Resources"] = {lid: r for lid, r in resources.items() if lid not in gone}
    for resource in result["Resources"].values():
        _drop_depends_on(resource, gone)
    outputs = result.get("Outputs", {})
    result["Outputs"] = {name: value for name, value in outputs.items() if not references(value) & gone}
    if not result["Outputs"]:
        result.pop("Outputs")
    result.get("Parameters", {}).pop(BOOTSTRAP_PARAMETER, None)
    result.pop("Rules", None)
    return Filtered(result, unsupported, dependent)


def _drop_depends_on(resource: dict[str, Any], gone: set[str]) -> None:
    depends = resource.get("DependsOn")
    if depends is None:
        return
    kept = [name for name in ([depends] if isinstance(depends, str) else depends) if name not in gone]
    if kept:
        resource["DependsOn"] = kept
    else:
        resource.pop("DependsOn")
