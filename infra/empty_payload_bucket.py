"""Empty a stage's payload bucket before its stack is deleted: `python -m infra.empty_payload_bucket STAGE`.

CloudFormation deletes only an empty bucket, and a stage without ``retain_data`` deletes its payload
bucket with the stack. `make destroy` runs this first: it asks once for the whole deletion (the stack
and the payloads its bucket still holds), then `cdk destroy` runs without asking again. A stage that
retains its data keeps the bucket, and nothing is deleted from it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

import boto3
from botocore.exceptions import ClientError

from infra.check_settings import CDK_JSON
from infra.settings import StackSettings
from infra.stack import stack_name

OUTPUT = "PayloadBucketName"
DELETE_BATCH = 1_000  # DeleteObjects takes at most 1,000 keys


def bucket_of(cloudformation: Any, stack: str) -> str | None:
    """The stack's payload bucket, from its outputs; None when the stack (or the output) does not exist."""
    try:
        [described] = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as error:
        if "does not exist" in str(error):
            return None
        raise
    return next((o["OutputValue"] for o in described.get("Outputs", []) if o["OutputKey"] == OUTPUT), None)


def empty(s3: Any, bucket: str) -> int:
    """Delete every object of ``bucket``; the number deleted. Refuses to go on past a key S3 did not delete."""
    deleted = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start : start + DELETE_BATCH]
            errors = s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True}).get("Errors", [])
            if errors:
                first = errors[0]
                raise RuntimeError(f"S3 did not delete {len(errors)} payload(s) of {bucket}: {first['Key']}: "
                                   f"{first['Code']} {first.get('Message', '')}")  # fmt: skip
            deleted += len(batch)
    return deleted


def main(argv: list[str] | None = None, ask: Callable[[str], str] = input) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.empty_payload_bucket", description=__doc__)
    parser.add_argument("stage")
    parser.add_argument("--yes", action="store_true", help="do not ask before deleting")
    args = parser.parse_args(argv)
    stages = json.loads(CDK_JSON.read_text())["context"]["stages"]
    everyone = [
        StackSettings.for_stage(args.stage, stages),
        *StackSettings.consumers_for_stage(args.stage, stages).values(),
    ]
    stack = stack_name(args.stage)
    retained = any(s.retain_data for s in everyone)
    what = f"stack {stack}" + ("" if retained else " and every payload in its payload bucket")
    if not args.yes and ask(f"Delete the {what}? [y/N] ").strip().lower() not in ("y", "yes"):
        sys.stderr.write("Nothing deleted.\n")
        return 1
    if retained:
        return 0
    bucket = bucket_of(boto3.client("cloudformation"), stack)
    if bucket is not None:
        sys.stderr.write(f"Deleted {empty(boto3.client('s3'), bucket)} payload(s) from {bucket}.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
