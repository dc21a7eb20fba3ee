"""Scaffold a new event type: the four steps of README's "Add an event type", done for you.

    python -m local.new_event --type invoice.paid [--field invoice_id]
    make new-event TYPE=invoice.paid [FIELD=invoice_id]
    make new-event TYPE=invoice.paid VERSION=2       (its next version: local/new_version.py)

Writes the model (models/<module>.py: a payload with one required, non-empty string field), the
handler (handlers/<module>.py) and its test (tests/unit/test_handler_<module>.py), adds the
Route and its two imports to routes.py, writes the sample event and its expected outcome
(events/<type>.json, through `make event`'s own writer), regenerates the JSON Schema and marks the
type new (schema/<type>/v1.unreleased: the schema gate compares it once `make schema-release` records
it as released). `make unit` passes right after; then give the payload its real fields and the
handler its work, and release its schema with the code that ships it.
Nothing is overwritten: an existing file or route stops it before anything is written.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from local import new_version
from publisher.releases import mark_new

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = new_version.PACKAGE
# An event type as the contract uses them: lowercase words joined by dots, underscores or hyphens.
EVENT_TYPE = re.compile(r"^[a-z][a-z0-9]*(?:[._-][a-z0-9]+)+$|^[a-z][a-z0-9]*$")
FIELD = re.compile(r"^[a-z][a-z0-9_]*$")
RESERVED = {"example.unregistered"}


@dataclass(frozen=True)
class Names:
    event_type: str
    field: str

    @property
    def module(self) -> str:
        return re.sub(r"[.-]", "_", self.event_type)

    @property
    def camel(self) -> str:
        return "".join(part.capitalize() for part in re.split(r"[._-]", self.event_type))

    @property
    def event_class(self) -> str:
        return f"{self.camel}Event"

    @property
    def payload_class(self) -> str:
        return f"{self.camel}Payload"

    @property
    def handler(self) -> str:
        return f"handle_{self.module}"


def model_source(n: Names) -> str:
    return f'''"""``{n.event_type}``: what happened, in one line for the next reader."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sqs_consumer.models.base import BaseEvent


class {n.payload_class}(BaseModel):
    # Producers may add fields; they are kept for handlers that want them.
    model_config = ConfigDict(frozen=True, extra="allow")

    {n.field}: str = Field(min_length=1)


class {n.event_class}(BaseEvent):
    event_type: Literal["{n.event_type}"]
    payload: {n.payload_class}
'''


def handler_source(n: Names) -> str:
    # In the order ruff sorts them, which depends on the module's name.
    imports = "\n".join(sorted([f"from sqs_consumer.models.{n.module} import {n.event_class}",
                                "from sqs_consumer.models.record import RecordInfo",
                                "from sqs_consumer.observability import logger"]))  # fmt: skip
    return f'''"""Handler for ``{n.event_type}``."""

from __future__ import annotations

import logging

{imports}


def {n.handler}(event: {n.event_class}, record: RecordInfo) -> None:
    # The work goes here. Raise NonRetryableError (sqs_consumer.errors) when retrying cannot help:
    # the message is quarantined with your reason. Any other exception retries the message.
    if logger.log_level <= logging.DEBUG:
        logger.debug(
            "{n.event_type} handled",
            {n.field}=event.payload.{n.field},
            event_id=event.event_id,
            trace_id=record.trace_id,
        )
'''


def handler_test_source(n: Names) -> str:
    return f'''"""The ``{n.event_type}`` handler through the real consumer, with the test kit (sqs_consumer.testing)."""

from __future__ import annotations

from sqs_consumer.testing import run_batch


def _event(event_id: str, **payload: str) -> dict:
    return {{"event_id": event_id, "event_type": "{n.event_type}", "payload": payload}}


def test_{n.module}_is_handled_once_and_its_message_deleted():
    result = run_batch(_event("evt_1", {n.field}="x-1"))

    assert result.succeeded == ["evt_1"]
    assert result["evt_1"].handler_calls == 1


def test_{n.module}_without_{n.field}_is_quarantined_with_its_reason():
    result = run_batch(_event("evt_1", {n.field}=""))

    assert result.quarantined["evt_1"].kind == "invalid_payload"
    assert "{n.field}" in (result.quarantined["evt_1"].reason or "")


def test_{n.module}_sent_again_is_a_duplicate_whatever_its_shape():
    first = run_batch(_event("evt_1", {n.field}="x-1"))
    again = run_batch(_event("evt_1", {n.field}="x-1"), shape="sns", idempotency=first.idempotency)

    assert again.duplicates == ["evt_1"]
'''


def add_route(routes: str, n: Names) -> str:
    """routes.py with the two imports (in isort's order) and the Route line added."""
    lines = routes.splitlines()
    imports = [
        f"from sqs_consumer.handlers.{n.module} import {n.handler}",
        f"from sqs_consumer.models.{n.module} import {n.event_class}",
    ]
    indexes = [i for i, line in enumerate(lines) if line.startswith("from sqs_consumer.")]
    if not indexes:
        raise ValueError("routes.py has no `from sqs_consumer. ... import` lines to add to")
    first, last = indexes[0], indexes[-1]
    block = sorted([*lines[first : last + 1], *imports], key=lambda line: line.split()[1])
    lines[first : last + 1] = block
    closing = max(i for i, line in enumerate(lines) if line.strip() == "]")
    lines.insert(closing, f"        Route({n.event_class}, {n.handler}),")
    return "\n".join(lines) + "\n"


def scaffold(n: Names, root: Path = ROOT) -> list[Path]:
    package = root / PACKAGE
    routes_path = package / "routes.py"
    routes = routes_path.read_text()
    files = {
        package / "models" / f"{n.module}.py": model_source(n),
        package / "handlers" / f"{n.module}.py": handler_source(n),
        root / "tests" / "unit" / f"test_handler_{n.module}.py": handler_test_source(n),
    }
    existing = [path for path in [*files, root / "events" / f"{n.event_type}.json"] if path.exists()]
    if existing:
        raise FileExistsError(", ".join(str(path.relative_to(root)) for path in existing))
    if f'"{n.event_type}"' in _registered_types(root) or n.event_class in routes:
        raise FileExistsError(f"{n.event_type} is already registered in routes.py")
    new_routes = add_route(routes, n)
    for path, text in files.items():
        path.write_text(text)
    routes_path.write_text(new_routes)
    written = [*files, routes_path]
    # The sample and the schema come from the registry as it is now: a fresh interpreter imports it.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(root / "functions" / "consumer")])}
    payload = json.dumps({n.field: f"{n.field.removesuffix('_id')}-1"})
    subprocess.run([sys.executable, "-m", "local.sample_event", "--type", n.event_type, "--payload", payload],  # noqa: S603
                   cwd=root, env=env, check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    schema = subprocess.run([sys.executable, "-m", "publisher.schema"], cwd=root, env=env, check=True,
                            capture_output=True, text=True).stdout  # fmt: skip
    (root / "schema" / "events.schema.json").write_text(schema)
    marked = mark_new(n.event_type, 1, root / "schema")  # new: the gate compares it once it is released
    return [*written, root / "events" / f"{n.event_type}.json", root / "events" / f"{n.event_type}.expected.json",
            root / "schema" / "events.schema.json", marked]  # fmt: skip


def scaffold_version(n: Names, version: int, root: Path = ROOT) -> list[Path]:
    """The next version of a registered type (local/new_version.py); ValueError when it cannot be written."""
    current = _current_version(root, n.event_type)
    if current != version - 1:
        raise ValueError(f"{n.event_type} is at version {current}: the next one is {current + 1}, not {version}")
    files = new_version.version_files(root, new_version.Names(n.event_type, n.module, n.event_class), version)
    sample = root / "events" / f"{n.event_type}.json"
    payload = json.loads(json.loads(sample.read_text())["Records"][0]["body"])["payload"]
    for path, text in files.items():
        path.write_text(text)
    kept = []
    for suffix in (".json", ".expected.json"):  # the sample before, kept: a message sent before the deploy
        kept.append(root / "events" / f"{n.event_type}.v{version - 1}{suffix}")
        (root / "events" / f"{n.event_type}{suffix}").rename(kept[-1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(root / "functions" / "consumer")])}
    subprocess.run([sys.executable, "-m", "local.sample_event", "--type", n.event_type, "--payload",  # noqa: S603
                    json.dumps(payload)], cwd=root, env=env, check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    schema = subprocess.run([sys.executable, "-m", "publisher.schema"], cwd=root, env=env, check=True,
                            capture_output=True, text=True).stdout  # fmt: skip
    (root / "schema" / "events.schema.json").write_text(schema)
    marked = mark_new(n.event_type, version, root / "schema")
    return [*files, *kept, sample, sample.with_name(f"{n.event_type}.expected.json"),
            root / "schema" / "events.schema.json", marked]  # fmt: skip


def _current_version(root: Path, event_type: str) -> int:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(root / "functions" / "consumer")])}
    code = (
        "import sys; from sqs_consumer.routes import REGISTRY; route = REGISTRY.routes.get(sys.argv[1]); "
        "print(route.version if route else 0)"
    )
    listed = subprocess.run([sys.executable, "-c", code, event_type], cwd=root, env=env, check=True,  # noqa: S603
                            capture_output=True, text=True).stdout  # fmt: skip
    if int(listed) == 0:
        raise ValueError(f"{event_type} is not registered: scaffold it first (make new-event TYPE={event_type})")
    return int(listed)


def _registered_types(root: Path) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(root / "functions" / "consumer")])}
    command = [sys.executable, "-c", "from sqs_consumer.routes import REGISTRY; print(sorted(REGISTRY.routes))"]
    listed = subprocess.run(command, cwd=root, env=env, check=True, capture_output=True, text=True).stdout  # noqa: S603
    return listed.replace("'", '"')


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv: Sequence[str] | None = None, root: Path = ROOT) -> int:
    parser = _ArgumentParser(prog="python -m local.new_event", description=__doc__,
                             formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--type", required=True, dest="event_type", help="the new event_type, e.g. invoice.paid")
    parser.add_argument("--field", help="the payload's required field (default: <first word>_id)")
    parser.add_argument("--version", type=int, metavar="N",
                        help="the next version N (2 or more) of a registered, released type: its model, upcaster, "
                        "route, test and sample (local/new_version.py)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.version is not None:
        return _main_version(parser, args, root)
    if not EVENT_TYPE.match(args.event_type):
        parser.error(f"--type {args.event_type!r}: lowercase words joined by '.', '_' or '-', e.g. invoice.paid")
    if args.event_type in RESERVED:
        parser.error(f"--type {args.event_type!r} is reserved for the unknown-type samples")
    field = args.field or re.split(r"[._-]", args.event_type)[0] + "_id"
    if not FIELD.match(field):
        parser.error(f"--field {field!r}: a Python identifier in lowercase, e.g. invoice_id")
    try:
        written = scaffold(Names(args.event_type, field), root)
    except FileExistsError as error:
        print(f"error: nothing written: {error} exists already", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path.relative_to(root)}")
    print("Next: give the payload its real fields and the handler its work; `make unit` passes as it is. "
          "Run `make schema-release` when it ships.")  # fmt: skip
    return 0


def _main_version(parser: argparse.ArgumentParser, args: argparse.Namespace, root: Path) -> int:
    if args.version < 2:
        parser.error(f"--version {args.version}: a new version is 2 or more (version 1 is the type itself)")
    if args.field:
        parser.error("--field is for a new type; a new version keeps the type's fields until you change them")
    try:
        written = scaffold_version(Names(args.event_type, ""), args.version, root)
    except ValueError as error:
        print(f"error: nothing written: {error}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path.relative_to(root)}")
    print(f"Next: change the model and its upcaster together; release version {args.version} once deployed "
          "(make schema-release).")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
