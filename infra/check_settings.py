"""Check a stage's settings before the CDK CLI runs: `python -m infra.check_settings STAGE [--cdk-json PATH]`.

`make synth|diff|deploy|destroy` run it first. A bad setting then prints one line, the same
`error: invalid settings for stage ...` that app.py gives, without what the CDK CLI adds after any
failing app (`python3 app.py: Subprocess exited with error 1`), and in a second rather than after
the CDK CLI's own start.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from infra.settings import StackSettings, StackSettingsError

CDK_JSON = Path(__file__).resolve().parents[1] / "cdk.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.check_settings", description=__doc__)
    parser.add_argument("stage", help="a stage under context.stages in cdk.json")
    parser.add_argument("--cdk-json", type=Path, default=CDK_JSON, help="default: the project's cdk.json")
    args = parser.parse_args(argv)
    try:
        stages = json.loads(args.cdk_json.read_text())["context"]["stages"]
        StackSettings.for_stage(args.stage, stages)
    except StackSettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except (OSError, ValueError, KeyError) as error:
        print(f"error: cannot read context.stages from {args.cdk_json}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
