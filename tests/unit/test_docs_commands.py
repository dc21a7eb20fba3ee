"""Every command README.md and docs/ show is checked: none is only read by people.

Each command is checked by its kind: a make target by make's dry run (the target exists and uses every
variable given), an AWS CLI call against botocore's model of the service (the operation and each
option exist), the project's own commands by being installed here and run as written against the
local pipeline (tests/e2e/test_readme.py), a SAM call against the synthesized template
(tests/infra/test_docs_sam.py). A command of no known kind fails the first test below.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import shutil
import subprocess
import tomllib
from functools import cache
from pathlib import Path

import botocore.session
import pytest

from tests.support.docs import ROOT, Command, commands, pages, relative

# Shell syntax of a documented pipeline, background job or loop: checked as part of the command it serves.
SHELL_WORDS = {"kill", "wait", "for", "do", "done", "export"}
ASSIGNMENT = re.compile(r"^[A-Z_]+=\S*(?: [A-Z_]+=\S*)*$")
# Commands the AWS CLI adds to botocore's services (its customizations), and options it renames.
AWSCLI_COMMANDS = {("configure", None)}
AWSCLI_RENAMED = {("sns", "subscribe", "notification-endpoint"): "Endpoint"}
AWSCLI_GLOBAL_OPTIONS = {"query", "output", "region", "endpoint-url", "profile", "cli-binary-format"}
# A documented script that runs in the background, with what stops it: run by that test instead.
SERVE_STOPPED = "test_serve_through_make_shows_each_outcome_and_stops_on_sigterm_to_make"
COVERED_ELSEWHERE = {
    "make local ARGS=--serve > serve.log 2>&1 &": SERVE_STOPPED,
    "kill -TERM $!; wait $!": SERVE_STOPPED,
}


def all_commands() -> list[Command]:
    return [command for page in pages() for command in commands(page)]


def segments(text: str) -> list[str]:
    """The simple commands of a line: split at pipes and separators, redirections and `&` dropped."""
    text = re.sub(r"\s*\d?>\s*\S+|\s*2>&1|\s*&\s*$", "", text)
    return [part.strip() for part in re.split(r"\s*(?:\||;|&&)\s*", text) if part.strip()]


def kind(segment: str) -> str:
    words = segment.split()
    first = words[0]
    if first == "make":
        return "make"
    if first.startswith(".venv/bin/"):
        return "installed"
    if first in {"aws", "sam", "some-producer"}:
        return first
    if first == "cdk" or words[:2] == ["npx", "cdk"]:
        return "cdk"
    if words[:2] == ["python", "-m"]:
        return "module"
    if first in SHELL_WORDS or ASSIGNMENT.match(segment):
        return "shell"
    return "unknown"


def of_kind(name: str) -> list[str]:
    found = {segment for c in all_commands() for segment in segments(c.text) if kind(segment) == name}
    return sorted(found)


def test_every_documented_command_is_of_a_checked_kind():
    unknown = [str(c) for c in all_commands() for s in segments(c.text) if kind(s) == "unknown"]
    assert unknown == [], "a command no test checks; give it a checker in tests/unit/test_docs_commands.py"
    assert len(of_kind("make")) > 20 and of_kind("aws") and of_kind("installed")


@pytest.mark.parametrize("command", of_kind("make"))
def test_make_command_names_a_target_that_uses_every_variable_given(command: str):
    # WHEN make prints what the command would run (-n runs nothing)
    dry = subprocess.run(["/bin/bash", "-c", f"make -n --no-print-directory {command[len('make') :]}"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip

    # THEN the target exists, and each value given reaches the recipe (a variable the Makefile ignores would not)
    assert dry.returncode == 0, dry.stderr
    for word in shlex.split(command)[1:]:
        name, _, value = word.partition("=")
        if value and value != "...":
            assert value in dry.stdout, f"{name}={value} does not reach the recipe of {command!r}"


@cache
def _service(name: str) -> botocore.model.ServiceModel:
    return botocore.session.get_session().get_service_model(name)


def _pascal(kebab: str) -> str:
    return "".join(part.capitalize() for part in kebab.split("-"))


@pytest.mark.parametrize("command", of_kind("aws"))
def test_aws_command_names_an_operation_and_options_the_service_has(command: str):
    words = shlex.split(command.replace("...", ""))[1:]
    service, operation = words[0], words[1] if len(words) > 1 and not words[1].startswith("-") else None
    if (service, operation) in AWSCLI_COMMANDS:
        return
    model = _service(service)
    if operation is None:
        return
    names = {op.lower(): op for op in model.operation_names}
    assert _pascal(operation).lower() in names, f"{service} has no operation {operation}"
    shape = model.operation_model(names[_pascal(operation).lower()]).input_shape
    members = {m.lower() for m in shape.members} if shape is not None else set()
    for word in words[2:]:
        if word.startswith("--"):
            option = word[2:]
            member = AWSCLI_RENAMED.get((service, operation, option), _pascal(option))
            assert option in AWSCLI_GLOBAL_OPTIONS or member.lower() in members, f"{command}: no option --{option}"


def _project_scripts() -> set[str]:
    return set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"])


@pytest.mark.parametrize("command", of_kind("installed"))
def test_installed_command_is_one_the_project_installs(command: str):
    assert command.split(maxsplit=1)[0].removeprefix(".venv/bin/") in _project_scripts()


def test_every_installed_command_of_a_bash_block_is_run_by_the_e2e_test():
    from tests.e2e.test_readme import documented_commands
    from tests.e2e.test_runbook import runbook_commands

    run = {*documented_commands(), *runbook_commands()}
    shown = {" ".join(c.text.split()) for c in all_commands() if c.in_block and ".venv/bin/" in c.text}
    run = {" ".join(command.split()) for command in run}
    assert shown <= run, shown - run


@pytest.mark.parametrize("command", of_kind("module"))
def test_python_module_command_names_a_module_of_the_project(command: str):
    module = command.split()[2]
    assert importlib.util.find_spec(module) is not None, command


@pytest.mark.skipif(not (ROOT / "node_modules" / ".bin" / "cdk").exists(), reason="make setup installs the CDK CLI")
def test_cdk_commands_are_commands_of_the_pinned_cdk_cli():
    shown = {shlex.split(c)[1 if c.startswith("cdk") else 2] for c in of_kind("cdk")}
    usage = subprocess.run([str(ROOT / "node_modules" / ".bin" / "cdk"), "--help"], capture_output=True, text=True,
                           timeout=120, check=False).stdout  # fmt: skip
    known = set(re.findall(r"^\s+cdk (\w[\w-]*)", usage, flags=re.MULTILINE))
    assert shown <= known, shown - known


def test_commands_covered_elsewhere_are_run_by_the_named_test():
    shown = {s for c in all_commands() for s in [c.text] if kind(segments(c.text)[0]) == "shell" or "&" in c.text}
    e2e = (ROOT / "tests" / "e2e" / "test_local_pipeline.py").read_text()
    for command in shown - {"OUTPUTS=cdk.out/outputs-dev.json STACK=SqsConsumer-dev", "done"}:
        if command.startswith(("for ", "export ")):
            continue  # the runbook's export loop: run below
        assert command in COVERED_ELSEWHERE, command
        assert f"def {COVERED_ELSEWHERE[command]}(" in e2e


@pytest.mark.skipif(shutil.which("jq") is None, reason="the runbook's export loop uses jq")
def test_the_runbook_export_block_sets_each_variable_from_the_stack_outputs(tmp_path: Path):
    # GIVEN the outputs file make deploy writes
    outputs = {"QueueUrl": "https://q", "DeadLetterQueueUrl": "https://dlq", "DeadLetterQueueArn": "arn:dlq",
               "FunctionName": "fn", "LogGroupName": "lg"}  # fmt: skip
    (tmp_path / "cdk.out").mkdir()
    (tmp_path / "cdk.out" / "outputs-dev.json").write_text(json.dumps({"SqsConsumer-dev": outputs}))
    [block] = [b for b in re.findall(r"```bash\n(.*?)```", (ROOT / "docs" / "runbook.md").read_text(), re.DOTALL)
               if "OUTPUTS=" in b]  # fmt: skip

    # WHEN the runbook's first block runs as written
    script = block + '\nprintf "%s\\n" "$QUEUE_URL" "$DLQ_URL" "$DLQ_ARN" "$FUNCTION" "$LOG_GROUP"\n'
    run = subprocess.run(["/bin/bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True)

    # THEN each variable holds its output
    assert run.stdout.split() == ["https://q", "https://dlq", "arn:dlq", "fn", "lg"]


def test_every_documented_command_is_collected_from_each_page():
    # The README's newcomer path is among the commands checked.
    readme = {c.text for c in all_commands() if relative(c.page) == "README.md"}
    assert {"make local", "make test", "make unit", "make new-event TYPE=invoice.paid"} <= readme
