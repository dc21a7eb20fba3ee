"""Building the asset: without a CPython 3.14 it goes on without bytecode and says so in one line;
two builds at once never break each other."""

from __future__ import annotations

import gzip
import json
import threading
import time
from pathlib import Path

import pytest

from infra import packaging, runtime_python
from infra.packaging import Target


def test_without_a_runtime_python_synth_goes_on_and_says_so_in_one_line(monkeypatch, capsys):
    def no_python() -> list[str]:
        raise runtime_python.RuntimePythonError(
            "no CPython 3.14 found: install python3.14 (or `uv python install 3.14`)\nmore detail"
        )

    monkeypatch.setattr(runtime_python, "install", no_python)

    assert packaging.bytecode_compiler(Target("3.14", "arm64")) is None
    err = capsys.readouterr().err
    assert (
        err == "asset built without bytecode: no CPython 3.14 found: install python3.14 (or `uv python install 3.14`)\n"
    )


@pytest.mark.parametrize("version", ["3.13", "3.15"])
def test_a_target_of_another_python_gets_no_bytecode(version, capsys):
    assert packaging.bytecode_compiler(Target(version, "arm64")) is None
    assert "only CPython 3.14 is looked for" in capsys.readouterr().err


def test_two_builds_at_once_share_one_finished_folder_and_leave_no_partial_behind(monkeypatch, tmp_path):
    # GIVEN an installer that takes a while, so two builds of the same inputs overlap (parallel tests, two terminals)
    started = threading.Barrier(2)

    def slow_install(target: Target, folder: Path, *arguments: str, hint: str = "") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        started.wait(timeout=10)
        (folder / "module.py").write_text("VALUE = 1\n")
        time.sleep(0.2)

    monkeypatch.setattr(packaging, "install_wheels", slow_install)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("pydantic==2.0\n")
    results: list[Path | BaseException] = []

    def build() -> None:
        try:
            results.append(packaging.build_dependencies(Target("3.14", "arm64"), requirements, tmp_path / "cache"))
        except BaseException as exc:  # the test reports what a build raised
            results.append(exc)

    # WHEN both run at the same time
    threads = [threading.Thread(target=build) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # THEN both get the same complete folder, and nothing half-built is left in the cache
    assert all(isinstance(result, Path) for result in results), results
    assert results[0] == results[1]
    folder = results[0]
    assert isinstance(folder, Path)
    assert (folder / ".complete").is_file() and (folder / "module.py").read_text() == "VALUE = 1\n"
    assert sorted(path.name for path in (tmp_path / "cache").iterdir()) == [folder.name]


def test_the_asset_leaves_out_the_test_kit():
    package = packaging.FUNCTION_SOURCE / "sqs_consumer"
    assert packaging._IGNORED(str(package), ["testing", "handler.py"]) == {"testing"}


def test_a_kept_service_model_is_plain_json_without_its_documentation(tmp_path):
    # GIVEN a service model as botocore ships it: gzip, documentation on operations and shapes, and a
    # structure with a member that happens to be named "documentation"
    model = {
        "operations": {"PutItem": {"name": "PutItem", "documentation": "<p>Creates an item.</p>"}},
        "shapes": {
            "Item": {"type": "structure", "documentation": "<p>An item.</p>",
                     "members": {"documentation": {"shape": "String", "documentation": "<p>Its text.</p>"}}},
            "String": {"type": "string"},
        },
    }  # fmt: skip
    folder = tmp_path / "dynamodb" / "2012-08-10"
    folder.mkdir(parents=True)
    (folder / "service-2.json.gz").write_bytes(gzip.compress(json.dumps(model).encode()))
    rules = {"version": "1.0", "rules": [{"documentation": "kept: not a service model"}]}
    (folder / "endpoint-rule-set-1.json.gz").write_bytes(gzip.compress(json.dumps(rules).encode()))

    # WHEN each is made plain
    for compressed in sorted(folder.glob("*.json.gz")):
        packaging._decompress_model(compressed)

    # THEN botocore finds them as .json (read before .json.gz), the service model without its documentation
    # strings but with its member named "documentation", the rule set unchanged
    assert sorted(path.name for path in folder.iterdir()) == ["endpoint-rule-set-1.json", "service-2.json"]
    assert json.loads((folder / "service-2.json").read_text()) == {
        "operations": {"PutItem": {"name": "PutItem"}},
        "shapes": {
            "Item": {"type": "structure", "members": {"documentation": {"shape": "String"}}},
            "String": {"type": "string"},
        },
    }
    assert json.loads((folder / "endpoint-rule-set-1.json").read_text()) == rules
