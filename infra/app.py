"""Builds the CDK app for a stage: settings, stack and cdk-nag checks."""

from __future__ import annotations

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from infra.settings import DEFAULT_STAGE, StackSettings
from infra.stack import ConsumerStack, stack_name


def build_app(app: App) -> ConsumerStack:
    stage = str(app.node.try_get_context("stage") or DEFAULT_STAGE)
    stages = app.node.try_get_context("stages")
    settings = StackSettings.for_stage(stage, stages)
    stack = ConsumerStack(
        app,
        stack_name(stage),
        stage=stage,
        settings=settings,
        consumers=StackSettings.consumers_for_stage(stage, stages),
        description=f"SQS consumer on Lambda ({stage})",
    )
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return stack
