"""``make upgrade-check FROM=<git ref>``: what CloudFormation would replace or orphan in an upgrade from a release.

Both trees are synthesized the way `cdk synth` does it (each one's own app.py and cdk.json, run by
this virtualenv's Python): the ref from a ``git archive`` in a temporary folder, then the working
tree. Their templates are compared stage by stage with the rules of infra/identity.py. A logical id
that is gone is deleted (orphaned, with DeletionPolicy Retain); a changed property whose change
requires replacement replaces the resource, and so does a replacement property that refers to a
replaced resource (a mapping's EventSourceArn when its queue is replaced). A new logical id that
takes a fixed name an old one holds fails to be created: the deploy rolls back.

Exit status: 1 if a stateful resource (infra.identity.STATEFUL_TYPES) would be replaced, deleted or
orphaned, or a create would collide with a name; 0 otherwise, with a one-line summary; 2 for bad
input (an unknown ref, a tree that does not synthesize).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.identity import (
    CLI_CONTEXT,
    NAME_PROPERTIES,
    REPLACEMENT_PROPERTIES,
    ROOT,
    STATEFUL_TYPES,
    construct_path,
)

ASSET_CACHE = Path(".cache") / "assets"
# Where the ref's tree is unpacked: in this tree's .cache, so its dependencies can be hard links.
SCRATCH = Path(".cache") / "upgrade-check"
RUNTIME_PYTHON = Path(".cache") / "python3.14"
# Two synths at once: each is a Python process and a node one, on a machine that does other work.
WORKERS = 2


class UpgradeCheckError(RuntimeError):
    """Bad input: the message is the one line printed."""


@dataclass(frozen=True)
class Finding:
    """One resource an upgrade would not update in place."""

    stage: str
    logical_id: str
    type: str
    path: str
    action: str  # "replaced", "deleted", "orphaned", "not created"
    reason: str

    @property
    def stateful(self) -> bool:
        return self.type in STATEFUL_TYPES

    @property
    def blocking(self) -> bool:
        """Data lost, or a deploy that fails: the check exits 1."""
        return self.stateful or self.action == "not created"

    def line(self) -> str:
        kind = "stateful " if self.stateful else ""
        return f"  {self.stage}: {self.logical_id} ({kind}{self.type} at {self.path}) {self.action}: {self.reason}"


def _references(value: Any) -> set[str]:
    """The logical ids a property value refers to (Ref, Fn::GetAtt, Fn::Sub's ${Id} and ${Id.Attr})."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                found.add(inner)
            elif key == "Fn::GetAtt":
                found.add(inner[0] if isinstance(inner, list) else str(inner).split(".")[0])
            elif key == "Fn::Sub":
                text = inner[0] if isinstance(inner, list) else inner
                found.update(part.split("}")[0].split(".")[0] for part in str(text).split("${")[1:])
                if isinstance(inner, list):
                    found |= _references(inner[1:])
            else:
                found |= _references(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= _references(inner)
    return found


def compare(stage: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Finding]:
    """What an update from template ``old`` to ``new`` replaces, deletes, orphans or fails to create."""
    before, after = old.get("Resources", {}), new.get("Resources", {})
    findings: dict[str, Finding] = {}
    for logical_id in sorted(before.keys() - after.keys()):
        resource = before[logical_id]
        retained = resource.get("DeletionPolicy") in {"Retain", "RetainExceptOnCreate"}
        findings[logical_id] = Finding(
            stage, logical_id, resource["Type"], construct_path(resource), "orphaned" if retained else "deleted",
            "its logical id is gone from the template" + (" (DeletionPolicy Retain: it stays, outside the stack)"
                                                          if retained else ""),
        )  # fmt: skip
    # Replacements, to a fixed point: a replaced resource gets a new ARN (and a generated name), so a
    # replacement property that refers to it changes too.
    replaced: set[str] = set(before.keys() - after.keys())
    changed = True
    while changed:
        changed = False
        for logical_id in sorted(before.keys() & after.keys()):
            if logical_id in findings:
                continue
            reason = _replacement_reason(before[logical_id], after[logical_id], replaced)
            if reason:
                resource = after[logical_id]
                findings[logical_id] = Finding(
                    stage, logical_id, resource["Type"], construct_path(resource), "replaced", reason
                )
                replaced.add(logical_id)
                changed = True
    findings.update(_name_collisions(stage, before, after))
    return sorted(findings.values(), key=lambda f: (not f.blocking, f.logical_id))


def _replacement_reason(old: Mapping[str, Any], new: Mapping[str, Any], replaced: set[str]) -> str | None:
    if old["Type"] != new["Type"]:
        return f"its type changes from {old['Type']} to {new['Type']}"
    rules = REPLACEMENT_PROPERTIES.get(new["Type"])
    old_props, new_props = old.get("Properties") or {}, new.get("Properties") or {}
    if rules is None:
        return None
    reasons = []
    for name in rules:
        before, after = old_props.get(name), new_props.get(name)
        if before != after:
            reasons.append(f"{name} {json.dumps(before)} -> {json.dumps(after)}")
        elif _references(after) & replaced:
            reasons.append(f"{name} refers to {', '.join(sorted(_references(after) & replaced))}, which is replaced")
    return "; ".join(reasons) + " (a change that requires replacement)" if reasons else None


def _name_collisions(stage: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> Iterator[tuple[str, Finding]]:
    """New logical ids that take a fixed name an old resource still holds: CloudFormation creates the new
    resource before it deletes the old one, and the create fails on the name."""
    held = {}
    for logical_id in before.keys() - after.keys():
        resource = before[logical_id]
        name = NAME_PROPERTIES.get(resource["Type"])
        value = (resource.get("Properties") or {}).get(name) if name else None
        if value is not None:
            held[(resource["Type"], json.dumps(value, sort_keys=True))] = logical_id
    for logical_id in sorted(after.keys() - before.keys()):
        resource = after[logical_id]
        name = NAME_PROPERTIES.get(resource["Type"])
        value = (resource.get("Properties") or {}).get(name) if name else None
        old_id = held.get((resource["Type"], json.dumps(value, sort_keys=True))) if value is not None else None
        if old_id is not None:
            yield logical_id, Finding(
                stage, logical_id, resource["Type"], construct_path(resource), "not created",
                f"it takes {name} {json.dumps(value)} that {old_id} holds (its construct id changed): the create "
                "fails and the deploy rolls back",
            )  # fmt: skip


# Synthesis of a tree.


def resolve(ref: str, repo: Path = ROOT) -> str:
    """The commit ``ref`` names, or UpgradeCheckError in one line."""
    if not ref:
        raise UpgradeCheckError("FROM is required: make upgrade-check FROM=<the deployed release's tag or commit>")
    # The ref is an argument of rev-parse after --verify, never an option (a leading "-" is refused).
    result = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],  # noqa: S603, S607
                            capture_output=True, text=True, check=False)  # fmt: skip
    if result.returncode != 0 or ref.startswith("-"):
        raise UpgradeCheckError(f"unknown git ref {ref!r}: give a commit, tag or branch (git log --oneline)")
    return result.stdout.strip()


def export(commit: str, folder: Path, repo: Path = ROOT) -> None:
    """The tree of ``commit`` into ``folder``, with this tree's caches for its asset build (the built
    dependencies, hard-linked, and the runtime's Python): the same inputs are not installed again."""
    archive = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", commit],  # noqa: S603, S607
                             capture_output=True, check=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)  # noqa: S603, S607
    cache = folder / ASSET_CACHE
    cache.mkdir(parents=True, exist_ok=True)
    for built in (repo / ASSET_CACHE).glob("deps-*"):
        if (built / ".complete").is_file():
            shutil.copytree(built, cache / built.name, copy_function=_link_or_copy)
    if (repo / RUNTIME_PYTHON).is_dir():
        (folder / RUNTIME_PYTHON).symlink_to(repo / RUNTIME_PYTHON, target_is_directory=True)


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:  # another file system
        shutil.copy2(source, destination)


def stages_of(tree: Path) -> list[str]:
    return sorted(json.loads((tree / "cdk.json").read_text())["context"]["stages"])


def synthesize(tree: Path, stage: str, outdir: Path, label: str) -> dict[str, Any]:
    """The template of ``stage`` from ``tree``'s own app (its cdk.json's "app", run by this Python), as the
    CDK CLI runs it: the context of its cdk.json, the stage, and an output folder, in the environment."""
    cdk_json = json.loads((tree / "cdk.json").read_text())
    command = shlex.split(cdk_json["app"])
    if Path(command[0]).name.startswith("python"):
        command[0] = sys.executable
    environment = {
        **os.environ,
        "CDK_OUTDIR": str(outdir),
        "CDK_CONTEXT_JSON": json.dumps({**cdk_json.get("context", {}), **CLI_CONTEXT, "stage": stage}),
        "PYTHONPATH": os.pathsep.join([str(tree), str(tree / "functions" / "consumer")]),
    }
    result = subprocess.run(command, cwd=tree, env=environment, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise UpgradeCheckError(f"{label} does not synthesize stage {stage!r}: {last}")
    manifest = json.loads((outdir / "manifest.json").read_text())
    stacks = [a for a in manifest["artifacts"].values() if a["type"] == "aws:cloudformation:stack"]
    return dict(json.loads((outdir / stacks[0]["properties"]["templateFile"]).read_text()))


def check(ref: str, stages: Sequence[str] | None = None, tree: Path = ROOT) -> tuple[list[Finding], list[str], str]:
    """The findings of an upgrade from ``ref`` to ``tree`` (the working tree), the stages compared, and
    the ref's short commit."""
    commit = resolve(ref, tree)
    (tree / SCRATCH).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tree-", dir=tree / SCRATCH) as scratch:
        old_tree = Path(scratch) / "tree"
        old_tree.mkdir()
        export(commit, old_tree, tree)
        now, then = stages_of(tree), stages_of(old_tree)
        unknown = sorted(set(stages or ()) - set(now))
        if unknown:
            raise UpgradeCheckError(f"unknown stage {', '.join(unknown)}: cdk.json has {', '.join(now)}")
        compared = [stage for stage in (stages or now) if stage in then]
        trees = ((old_tree, "old", f"{ref} ({commit[:12]})"), (tree, "new", "the working tree"))
        jobs = [(t, stage, Path(scratch) / f"{name}-{stage}", label) for stage in compared for t, name, label in trees]
        with ThreadPoolExecutor(WORKERS) as pool:
            templates = list(pool.map(lambda job: synthesize(*job), jobs))
    findings = []
    for index, stage in enumerate(compared):
        findings += compare(stage, templates[2 * index], templates[2 * index + 1])
    return findings, compared, commit[:12]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.upgrade_check", description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="ref", required=True, help="the release deployed now: a commit, tag or branch")
    parser.add_argument("--stage", action="append", help="a stage of cdk.json (repeatable; default: all)")
    args = parser.parse_args(argv)
    try:
        findings, compared, commit = check(args.ref, args.stage)
    except UpgradeCheckError as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    for finding in findings:
        sys.stdout.write(finding.line() + "\n")
    blocking = [f for f in findings if f.blocking]
    where = f"from {args.ref} ({commit}) to the working tree in {', '.join(compared) or 'no common stage'}"
    if blocking:
        sys.stdout.write(
            f"upgrade-check: {len(blocking)} stateful resource(s) replaced, deleted, orphaned or not created {where}. "
            "Keep the construct ids on their paths and their names (infra/stateful-resources.json has them), or "
            "write in CHANGELOG.md how a deployed stage is upgraded, then `make stateful-record`\n"
        )
        return 1
    others = f"; {len(findings)} other resource(s) replaced (listed above)" if findings else ""
    sys.stdout.write(f"upgrade-check: no stateful resource replaced or orphaned {where}{others}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
