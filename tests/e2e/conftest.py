from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk import App

from infra.app import build_app

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def local_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `local` stage synthesized from cdk.json, as `make local` synthesizes it."""
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    outdir = tmp_path_factory.mktemp("cdk.out")
    app = App(context={**context, "stage": "local"}, outdir=str(outdir))
    stack = build_app(app)
    app.synth()
    return outdir / f"{stack.stack_name}.template.json"
