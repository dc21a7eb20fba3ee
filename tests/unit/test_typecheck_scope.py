"""mypy reads the aws_cdk modules the project imports, and only those (pyproject.toml): the list there is
the imports' list, so a construct from a newly used service is type-checked the day it is imported."""

from __future__ import annotations

import ast
import os
import tomllib
from pathlib import Path

from tests.support.imports import ROOT

SKIPPED = frozenset({".venv", "node_modules", ".cache", "cdk.out", "__pycache__", ".git"})


def _aws_cdk_modules_imported(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "aws_cdk")
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            if node.module == "aws_cdk":
                found.add("aws_cdk")
                # ``from aws_cdk import aws_sqs as sqs``: a module; ``from aws_cdk import Stack``: a name of the root.
                found.update(f"aws_cdk.{alias.name}" for alias in node.names if alias.name.islower())
            elif node.module.split(".")[0] == "aws_cdk":
                found.add(node.module)
    return found


def imported_by_the_project() -> set[str]:
    found: set[str] = set()
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = [name for name in subfolders if name not in SKIPPED]
        for name in files:
            if name.endswith(".py"):
                text = Path(folder, name).read_text()
                if "aws_cdk" in text:
                    found |= _aws_cdk_modules_imported(ast.parse(text, name))
    return found


def read_by_mypy() -> tuple[set[str], set[str]]:
    """The aws_cdk modules mypy follows, and the patterns it skips."""
    overrides = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]["overrides"]
    followed = {m for o in overrides if o.get("follow_imports") == "normal" for m in o["module"]}
    skipped = {m for o in overrides if o.get("follow_imports") == "skip" for m in o["module"]}
    return {m for m in followed if m.split(".")[0] == "aws_cdk"}, skipped


def test_the_aws_cdk_modules_mypy_reads_are_those_the_project_imports():
    followed, skipped = read_by_mypy()
    assert "aws_cdk.*" in skipped
    assert followed == imported_by_the_project() | {"aws_cdk"}


def test_the_import_reader_tells_a_service_module_from_a_name_of_the_root():
    tree = ast.parse(
        "from aws_cdk import Stack, aws_sqs as sqs\nimport aws_cdk.aws_iam\nfrom aws_cdk.assertions import Template\n"
        "from . import aws_cdk\nimport jsii\n"
    )
    assert _aws_cdk_modules_imported(tree) == {"aws_cdk", "aws_cdk.aws_sqs", "aws_cdk.aws_iam", "aws_cdk.assertions"}
