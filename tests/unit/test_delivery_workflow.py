"""The delivery workflow's promises, read from the file: pinned actions, least privilege, no overlapping
deploys, and prod's diff shown before its approval. (actionlint and zizmor lint it in `make test`.)"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "delivery.yml"


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    return yaml.safe_load(WORKFLOW.read_text())


def test_every_action_is_pinned_to_a_commit(workflow):
    uses = [step["uses"] for job in workflow["jobs"].values() for step in job["steps"] if "uses" in step]
    assert uses
    for action in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), action


def test_pull_requests_run_make_test_with_no_aws_credentials(workflow):
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert {"pull_request", "push", "workflow_dispatch"} <= set(triggers)
    assert triggers["push"] == {"branches": ["main"], "tags": ["v*"]}
    assert workflow["permissions"] == {}
    test = workflow["jobs"]["test"]
    assert test["permissions"] == {"contents": "read"}
    assert [step.get("run") for step in test["steps"]][-1] == ".ci/run"


def test_only_jobs_in_an_environment_may_ask_for_an_oidc_token(workflow):
    for name, job in workflow["jobs"].items():
        asks = job.get("permissions", {}).get("id-token") == "write"
        assert asks == ("environment" in job), name


@pytest.mark.parametrize(("job", "stage"), [("deploy-dev", "dev"), ("deploy-prod", "prod")])
def test_two_deploys_of_a_stage_never_overlap(workflow, job, stage):
    deploy = workflow["jobs"][job]
    assert deploy["environment"] == stage
    assert deploy["concurrency"] == {"group": f"deploy-{stage}", "cancel-in-progress": False}
    assert deploy["steps"][-2]["run"].startswith(f"make deploy STAGE={stage} ")


@pytest.mark.parametrize(("job", "stage"), [("deploy-dev", "dev"), ("deploy-prod", "prod")])
def test_each_deploy_ends_with_the_smoke_test_of_its_stage(workflow, job, stage):
    # A deploy whose canary does not succeed fails its job (operations/smoke.py exits 1).
    assert workflow["jobs"][job]["steps"][-1]["run"] == f"make smoke STAGE={stage}"


def test_every_job_runs_node_22_the_lts_jsii_supports(workflow):
    versions = [step["with"]["node-version"] for job in workflow["jobs"].values() for step in job["steps"]
                if "setup-node" in step.get("uses", "")]  # fmt: skip
    assert versions and set(versions) == {"22"}


def test_dependabot_keeps_the_actions_the_python_pins_and_the_npm_lock_current():
    config = yaml.safe_load((ROOT / ".github" / "dependabot.yml").read_text())
    updates = {update["package-ecosystem"]: update for update in config["updates"]}
    assert set(updates) == {"github-actions", "pip", "npm"}
    assert all(update["directory"] == "/" and update["schedule"]["interval"] == "weekly" for update in updates.values())


def test_dev_deploys_from_main_and_prod_after_its_diff(workflow):
    jobs = workflow["jobs"]
    assert jobs["deploy-dev"]["needs"] == "test"
    assert "refs/heads/main" in jobs["deploy-dev"]["if"]
    assert jobs["diff-prod"]["needs"] == "test"
    assert "refs/tags/v" in jobs["diff-prod"]["if"] and "workflow_dispatch" in jobs["diff-prod"]["if"]
    assert jobs["diff-prod"]["environment"] == "prod-diff"
    assert any("make diff STAGE=prod" in step.get("run", "") for step in jobs["diff-prod"]["steps"])
    assert jobs["deploy-prod"]["needs"] == "diff-prod"


def test_the_diff_job_assumes_the_read_only_role(workflow):
    steps = workflow["jobs"]["diff-prod"]["steps"]
    [credentials] = [step for step in steps if "configure-aws-credentials" in step.get("uses", "")]
    assert credentials["with"]["role-to-assume"] == "${{ vars.AWS_DIFF_ROLE_ARN }}"


@pytest.mark.parametrize("target", ["synth", "diff", "deploy"])
def test_prod_is_synthesized_strict_so_a_warning_fails_it_and_dev_is_not(target):
    # prod's warnings (an alarm address at a reserved domain) fail its synth, diff and deploy, in CI and locally.
    def recipe(stage: str) -> str:
        dry = subprocess.run(["make", "-n", "--no-print-directory", target, f"STAGE={stage}"], cwd=ROOT,
                             capture_output=True, text=True, check=True)  # fmt: skip
        return next(line for line in dry.stdout.splitlines() if f"-c stage={stage}" in line)

    assert "--strict" in recipe("prod").split()
    assert "--strict" not in recipe("dev").split()


def test_prod_deploys_the_assembly_its_diff_job_built_and_showed(workflow):
    diff, deploy = workflow["jobs"]["diff-prod"]["steps"], workflow["jobs"]["deploy-prod"]["steps"]
    runs = [step.get("run", "") for step in diff]
    # Synthesized once, diffed from that assembly, and handed on as it is.
    synth = runs.index("make synth STAGE=prod")
    assert "make diff STAGE=prod ASSEMBLY=cdk.out" in runs[synth + 1]
    [upload] = [step for step in diff if "upload-artifact" in step.get("uses", "")]
    assert upload["with"]["path"] == "cdk.out/"
    [download] = [step for step in deploy if "download-artifact" in step.get("uses", "")]
    assert download["with"] == {"name": upload["with"]["name"], "path": "cdk.out/"}
    assert deploy[-2]["run"] == "make deploy STAGE=prod ASSEMBLY=cdk.out CDK_APPROVAL=never"
    assert not any(step.get("run", "").startswith("make synth") for step in deploy)


def test_prod_goes_ahead_only_for_a_commit_whose_dev_deploy_succeeded(workflow):
    job = workflow["jobs"]["diff-prod"]
    gate = job["steps"][0]
    assert job["permissions"]["deployments"] == "read"
    assert gate["env"]["COMMIT"] == "${{ github.sha }}"
    assert "deployments?environment=dev&sha=$COMMIT" in gate["run"]
    assert '"$state" != success' in gate["run"] and "exit 1" in gate["run"]
