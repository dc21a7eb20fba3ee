"""`make new-event` on a copy of the project: the four steps written, and the tests pass right after."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from local.new_event import main

ROOT = Path(__file__).resolve().parents[2]
COPIED = ("functions", "events", "schema", "tests", "local", "publisher", "operations", "pyproject.toml")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, tmp_path / name)
    return tmp_path


def test_new_event_writes_every_step_and_the_unit_tests_pass(project: Path, capsys):
    # WHEN a new type is scaffolded
    assert main(["--type", "invoice.paid"], root=project) == 0

    # THEN the model, handler, its test, the route, the sample and the schema are written, the type marked new
    out = capsys.readouterr().out
    package = "functions/consumer/sqs_consumer"
    for path in (f"{package}/models/invoice_paid.py", f"{package}/handlers/invoice_paid.py",
                 "tests/unit/test_handler_invoice_paid.py", f"{package}/routes.py", "events/invoice.paid.json",
                 "events/invoice.paid.expected.json", "schema/events.schema.json",
                 "schema/invoice.paid/v1.unreleased"):  # fmt: skip
        assert f"wrote {path}" in out
    assert "Route(InvoicePaidEvent, handle_invoice_paid)" in (project / package / "routes.py").read_text()
    assert '"invoice_id": "invoice-1"' in (project / "events/invoice.paid.json").read_text().replace('\\"', '"')

    # AND the registry, sample, schema and new handler tests pass, and the new code is lint-clean
    env = {**os.environ, "PYTHONPATH": f"{project}:{project / 'functions' / 'consumer'}"}
    tests = ["tests/unit/test_registry.py", "tests/unit/test_sample_events.py", "tests/unit/test_schema.py",
             "tests/unit/test_handler_invoice_paid.py"]  # fmt: skip
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], cwd=project,
                         env=env, capture_output=True, text=True, check=False)  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:]
    ruff = Path(sys.executable).parent / "ruff"
    lint = subprocess.run([str(ruff), "check", "--no-cache", "functions", "tests/unit/test_handler_invoice_paid.py"],
                          cwd=project, capture_output=True, text=True, check=False)  # fmt: skip
    assert lint.returncode == 0, lint.stdout
    formatted = subprocess.run([str(ruff), "format", "--no-cache", "--check", "functions", "tests/unit"],
                               cwd=project, capture_output=True, text=True, check=False)  # fmt: skip
    assert formatted.returncode == 0, formatted.stdout


def test_new_event_refuses_an_existing_type_and_writes_nothing(project: Path, capsys):
    routes = (project / "functions/consumer/sqs_consumer/routes.py").read_text()

    assert main(["--type", "hello"], root=project) == 1

    assert "nothing written" in capsys.readouterr().err
    assert (project / "functions/consumer/sqs_consumer/routes.py").read_text() == routes


@pytest.mark.parametrize("argv", [[], ["--type", "Invoice Paid"], ["--type", "example.unregistered"],
                                  ["--type", "invoice.paid", "--field", "Amount"]])  # fmt: skip
def test_new_event_bad_arguments_print_usage_and_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_readme_add_an_event_type_code_runs_as_shown(project: Path):
    # GIVEN the README's four steps, taken as written
    readme = (ROOT / "README.md").read_text()
    # (the four steps only: "Test your handler" below them is a test, not a step)
    section = readme.split("## Add an event type", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    blocks = [textwrap.dedent(block) for block in re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)]
    model, handler, registration = blocks
    [payload] = re.findall(r"make event TYPE=invoice\.paid PAYLOAD='(.*?)'", section)

    # WHEN they are applied to the project
    package = project / "functions/consumer/sqs_consumer"
    (package / "models/invoice_paid.py").write_text(model)
    (package / "handlers/invoice_paid.py").write_text(handler)
    routes = (package / "routes.py").read_text()
    imports = [line for line in registration.splitlines() if line.startswith("from ")]
    assert "Route(InvoicePaidEvent, handle_invoice_paid)," in registration
    registry_import = "from sqs_consumer.registry import"
    routes = routes.replace(registry_import, "\n".join([*imports, registry_import]))
    routes = routes.replace("    ]\n)", "        Route(InvoicePaidEvent, handle_invoice_paid),\n    ]\n)")
    (package / "routes.py").write_text(routes)
    env = {**os.environ, "PYTHONPATH": f"{project}:{project / 'functions' / 'consumer'}"}
    command = [sys.executable, "-m", "local.sample_event", "--type", "invoice.paid", "--payload", payload]
    sample = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, check=False)
    assert sample.returncode == 0, sample.stderr
    schema = subprocess.run([sys.executable, "-m", "publisher.schema"], cwd=project, env=env, capture_output=True,
                            text=True, check=True)  # fmt: skip
    (project / "schema/events.schema.json").write_text(schema.stdout)

    # ... and the README's handler test, as shown under "Test your handler", is the team's first test
    [handler_test] = re.findall(r"### Test your handler.*?```python\n(.*?)```", readme, flags=re.DOTALL)
    (project / "tests/unit/test_readme_handler.py").write_text(handler_test)

    # THEN the registry, sample, schema and handler tests pass
    tests = ["tests/unit/test_registry.py", "tests/unit/test_sample_events.py", "tests/unit/test_schema.py",
             "tests/unit/test_readme_handler.py"]  # fmt: skip
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], cwd=project,
                         env=env, capture_output=True, text=True, check=False)  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:]


def test_new_event_version_writes_the_next_version_and_the_tests_pass(project: Path, capsys):
    # GIVEN a type scaffolded and released at version 1
    assert main(["--type", "invoice.paid"], root=project) == 0
    env = {**os.environ, "PYTHONPATH": f"{project}:{project / 'functions' / 'consumer'}"}
    subprocess.run([sys.executable, "-m", "publisher.schema", "--release"], cwd=project, env=env, check=True,
                   capture_output=True)  # fmt: skip

    # WHEN its version 2 is scaffolded
    assert main(["--type", "invoice.paid", "--version", "2"], root=project) == 0

    # THEN the model is at version 2 with an upcaster in its route, the v1 sample is kept, a test is written
    package = project / "functions/consumer/sqs_consumer"
    assert "event_version: Literal[2]" in (package / "models/invoice_paid.py").read_text()
    routes = (package / "routes.py").read_text()
    assert "Route(InvoicePaidEvent, handle_invoice_paid, upcasters={1: invoice_paid_v1_to_v2})," in routes
    assert '\\"event_version\\": 2' in (project / "events/invoice.paid.json").read_text()
    assert "event_version" not in (project / "events/invoice.paid.v1.json").read_text()
    out = capsys.readouterr().out
    assert "wrote tests/unit/test_upcast_invoice_paid_v2.py" in out
    assert "wrote schema/invoice.paid/v2.unreleased" in out  # new: the gate passes it until it is released
    assert not (project / "schema/invoice.paid/v1.unreleased").exists()  # the release replaced the first mark

    # AND the registry, samples (the v1 one upcast), schema, gate and new tests pass, lint-clean
    tests = ["tests/unit/test_registry.py", "tests/unit/test_sample_events.py", "tests/unit/test_schema.py",
             "tests/unit/test_schema_compatibility.py", "tests/unit/test_handler_invoice_paid.py",
             "tests/unit/test_upcast_invoice_paid_v2.py"]  # fmt: skip
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], cwd=project,
                         env=env, capture_output=True, text=True, check=False)  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:]
    ruff = Path(sys.executable).parent / "ruff"
    written = ["functions", "tests/unit/test_upcast_invoice_paid_v2.py"]
    for command in (["check"], ["format", "--check"]):
        lint = subprocess.run([str(ruff), *command, "--no-cache", *written], cwd=project, capture_output=True,
                              text=True, check=False)  # fmt: skip
        assert lint.returncode == 0, lint.stdout


def test_new_event_version_of_an_unreleased_type_writes_nothing(project: Path, capsys):
    assert main(["--type", "invoice.paid"], root=project) == 0
    routes = (project / "functions/consumer/sqs_consumer/routes.py").read_text()

    assert main(["--type", "invoice.paid", "--version", "2"], root=project) == 1
    assert main(["--type", "hello", "--version", "3"], root=project) == 1

    err = capsys.readouterr().err
    assert "version 1 of invoice.paid is not released" in err
    assert "hello is at version 1: the next one is 2, not 3" in err
    assert (project / "functions/consumer/sqs_consumer/routes.py").read_text() == routes
