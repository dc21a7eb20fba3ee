#!/usr/bin/env python3
"""CDK entry point: `cdk synth -c stage=dev` (the stage's settings are in cdk.json)."""

import json
import sys
from pathlib import Path

# The function's settings class names its environment; the stack reuses it.
sys.path.insert(0, str(Path(__file__).resolve().parent / "functions" / "consumer"))

from aws_cdk import App

from infra.app import build_app
from infra.settings import StackSettingsError

app = App()
try:
    stack = build_app(app)
except StackSettingsError as error:
    sys.exit(f"error: {error}")
# A cdk-nag finding fails the synth with its report; reaching here means none.
assembly = app.synth()
report = Path(assembly.directory) / "validation-report.json"
plugins = json.loads(report.read_text()).get("pluginReports", []) if report.exists() else []
findings = sum(len(plugin.get("violations", [])) for plugin in plugins if plugin.get("pluginName") == "AwsSolutions")
sys.stderr.write(f"cdk-nag (AwsSolutions): {findings or 'no'} findings in {stack.stack_name}\n")
