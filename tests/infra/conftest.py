from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import App
from aws_cdk.assertions import Template

from infra.app import build_app
from infra.stack import ConsumerStack


def synth(stage: str = "dev", **settings: Any) -> tuple[App, ConsumerStack]:
    app = App(context={"stage": stage, "stages": {stage: settings}})
    return app, build_app(app)


@pytest.fixture(scope="session")
def dev_stack() -> ConsumerStack:
    return synth()[1]


@pytest.fixture(scope="session")
def template(dev_stack: ConsumerStack) -> Template:
    return Template.from_stack(dev_stack)
