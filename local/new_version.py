"""Scaffold the next version of an event type: README's "Add a version", done for you.

    python -m local.new_event --type invoice.paid --version 2
    make new-event TYPE=invoice.paid VERSION=2

Needs the type at version N - 1, released (schema/<type>/v<N-1>.json: `make schema-release`). Writes:
the model at version N (``event_version: Literal[N]`` in models/<module>.py) and, beside it, the
upcaster from N - 1 (``<module>_v<N-1>_to_v<N>``: a copy until you write the change); the upcaster in
the type's Route (routes.py); the test tests/unit/test_upcast_<module>_v<N>.py, which runs the
released version's sample through the consumer and checks the handler receives version N; the
sample: events/<type>.json at version N, the one before kept as events/<type>.v<N-1>.json (a message
sent before the deploy, which must still succeed); the JSON Schema; and the mark that version N is new
(schema/<type>/v<N>.unreleased). Then change the model and the upcaster together: `make schema-check`
passes while version N is marked new, `make unit` checks the rest; `make schema-release` records it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path("functions/consumer/sqs_consumer")


@dataclass(frozen=True)
class Names:
    """The names of an event type's code, as `make new-event` wrote them."""

    event_type: str
    module: str
    event_class: str


def upcaster_name(n: Names, version: int) -> str:
    return f"{n.module}_v{version - 1}_to_v{version}"


def upcaster_source(n: Names, version: int) -> str:
    return f'''

def {upcaster_name(n, version)}(event: dict[str, Any]) -> dict[str, Any]:
    """Version {version - 1} of ``{n.event_type}`` as version {version}: a pure function of the JSON object.

    Write here what changed (a field renamed, retyped, split, given a value): the consumer calls it for
    every message of version {version - 1}, from the queue or the DLQ, before validating the model.
    """
    return {{**event, "payload": dict(event["payload"])}}
'''


def model_at(source: str, n: Names, version: int) -> str:
    """The model module with its event at ``version`` and the upcaster to it appended."""
    declared = f"    event_version: Literal[{version}]\n"
    previous = re.compile(rf"^    event_version: Literal\[{version - 1}\]\n", re.MULTILINE)
    if previous.search(source):
        source = previous.sub(declared, source, count=1)
    else:
        anchor = re.compile(rf'^    event_type: Literal\["{re.escape(n.event_type)}"\]\n', re.MULTILINE)
        if not anchor.search(source):
            raise ValueError(f'no `event_type: Literal["{n.event_type}"]` line in {n.event_class} to version')
        source = anchor.sub(lambda match: match.group(0) + declared, source, count=1)
    typing_import = re.compile(r"^from typing import (.+)$", re.MULTILINE)
    found = typing_import.search(source)
    if found is None:
        raise ValueError("no `from typing import ...` line in the model's module")
    names = sorted({*(name.strip() for name in found.group(1).split(",")), "Any"})
    source = typing_import.sub(f"from typing import {', '.join(names)}", source, count=1)
    return source.rstrip("\n") + "\n" + upcaster_source(n, version)


def routes_at(routes: str, n: Names, version: int) -> str:
    """routes.py with the upcaster imported and added to the type's Route."""
    function = upcaster_name(n, version)
    model_import = re.compile(rf"^(from sqs_consumer\.models\.{n.module} import )(.+)$", re.MULTILINE)
    found = model_import.search(routes)
    if found is None:
        raise ValueError(f"routes.py does not import {n.event_class} from sqs_consumer.models.{n.module}")
    names = sorted({*(name.strip() for name in found.group(2).split(",")), function})
    routes = model_import.sub(lambda m: m.group(1) + ", ".join(names), routes, count=1)
    route = re.compile(rf"^(\s*Route\({n.event_class}, .*?)(upcasters=\{{(.*?)\}})?\),$", re.MULTILINE)
    line = route.search(routes)
    if line is None:
        raise ValueError(f"no one-line `Route({n.event_class}, ...),` in routes.py to add the upcaster to")
    earlier = f"{line.group(3)}, " if line.group(3) else ""
    head = line.group(1) if line.group(2) else f"{line.group(1).rstrip()}, "
    return routes[: line.start()] + f"{head}upcasters={{{earlier}{version - 1}: {function}}})," + routes[line.end() :]


def upcast_test_source(n: Names, version: int) -> str:
    return f'''"""Version {version - 1} of ``{n.event_type}`` still runs at version {version}: upcast, then handled."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqs_consumer.models.{n.module} import {n.event_class}
from sqs_consumer.registry import EventRegistry, Route
from sqs_consumer.routes import REGISTRY
from sqs_consumer.testing import run_batch

# A message of version {version - 1} as released: its sample, kept when version {version} came.
SAMPLE = Path(__file__).resolve().parents[2] / "events" / "{n.event_type}.v{version - 1}.json"


def test_{n.module}_v{version - 1}_message_reaches_the_handler_as_version_{version}():
    released = json.loads(json.loads(SAMPLE.read_text())["Records"][0]["body"])
    seen: list[Any] = []
    route = REGISTRY.routes["{n.event_type}"]
    registry = EventRegistry([Route(route.model, lambda event, record: seen.append(event), upcasters=route.upcasters)])

    result = run_batch(released, registry=registry)

    assert result.succeeded == [released["event_id"]]
    assert [type(event) for event in seen] == [{n.event_class}]
    assert seen[0].event_version == {version}
'''


def version_files(root: Path, n: Names, version: int) -> dict[Path, str]:
    """Every file the new version writes, with its text; ValueError when the project is not ready for it."""
    released = root / "schema" / n.event_type / f"v{version - 1}.json"
    if not released.is_file():
        raise ValueError(f"version {version - 1} of {n.event_type} is not released ({released.relative_to(root)} "
                         "is missing): run `make schema-release` first")  # fmt: skip
    package = root / PACKAGE
    model_path = package / "models" / f"{n.module}.py"
    sample = root / "events" / f"{n.event_type}.json"
    test_path = root / "tests" / "unit" / f"test_upcast_{n.module}_v{version}.py"
    for path in (model_path, sample):
        if not path.is_file():
            raise ValueError(f"{path.relative_to(root)} is missing: the type's model and sample are scaffolded by name")
    if test_path.exists():
        raise ValueError(f"{test_path.relative_to(root)} exists already")
    return {
        model_path: model_at(model_path.read_text(), n, version),
        package / "routes.py": routes_at((package / "routes.py").read_text(), n, version),
        test_path: upcast_test_source(n, version),
    }
