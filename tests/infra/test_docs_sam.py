"""The docs' `sam local invoke` commands name the synthesized function and files that exist."""

from __future__ import annotations

import re
import shlex
import tomllib

from aws_cdk.assertions import Template

from tests.support.docs import ROOT, commands, pages


def _sam_invokes() -> list[list[str]]:
    shown = (c.text for page in pages() for c in commands(page))
    return [shlex.split(text) for text in shown if text.startswith("sam local invoke ")]


def test_sam_local_invoke_names_the_dev_stacks_function_and_existing_events(template: Template):
    # GIVEN the function's logical id in the dev stage's template
    functions = set(template.find_resources("AWS::Lambda::Function"))
    invokes = _sam_invokes()
    assert invokes

    # THEN every documented invocation names it, with an event and template path that exist (or are synthesized)
    for argv in invokes:
        named = [word for word in argv[3:] if not word.startswith("-") and re.fullmatch(r"[A-Za-z0-9]+", word)]
        assert named and set(named) <= functions, (argv, functions)
        event = argv[argv.index("-e") + 1]
        assert (ROOT / event).exists(), event
        if "-t" in argv:
            assert argv[argv.index("-t") + 1] == "cdk.out/SqsConsumer-dev.template.json"


def test_samconfig_points_sam_at_the_dev_template():
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    assert "cdk.out/SqsConsumer-dev.template.json" in str(config)
