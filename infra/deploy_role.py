"""The role GitHub Actions deploys with, by OpenID Connect: no AWS keys stored in GitHub.

    make deploy-role GITHUB_REPOSITORY=owner/name [OIDC_PROVIDER_ARN=arn:aws:iam::...:oidc-provider/...]

An optional stack of its own (`SqsConsumer-deploy-role`), deployed once per account and region from
a laptop with administrator credentials, before the workflow's first deploy. It holds:

- GitHub's OIDC identity provider (`token.actions.githubusercontent.com`, audience
  `sts.amazonaws.com`), or the account's existing one (an account has one per URL):
  `OIDC_PROVIDER_ARN`;
- one deploy role per GitHub environment that deploys to this account (`DEPLOY_ENVIRONMENTS`, default
  `dev prod`; give a prod account `prod` alone): only jobs of that repository running in that
  environment may assume it (the token's `sub` is `repo:OWNER/NAME:environment:ENV`; other
  environments, branches, pull requests and forks get no credentials), for an hour at most. A dev job
  cannot assume prod's role: prod's trusts prod's token only, and no role may assume another. Its
  permissions: assuming this account and region's CDK bootstrap roles (deploy, file publishing,
  lookup), which is what `cdk deploy` does (CloudFormation acts through the bootstrap's execution
  role, never with the workflow's credentials); and, for the smoke test after a deploy
  (operations/smoke.py), sending to its own stage's queues (`SqsConsumer-ENV-*`) and reading its
  function's configuration and its idempotency table's items;
- a diff role for the environment `prod-diff`, the job that shows `cdk diff` before prod's approval:
  it may assume only the bootstrap's lookup role (read-only), so `cdk diff --no-change-set` works and
  a deploy cannot.
"""

from __future__ import annotations

from typing import Annotated, Any

from aws_cdk import Acknowledgment, App, CfnOutput, Duration, Stack, Validations
from aws_cdk import aws_iam as iam
from cdk_nag import AwsSolutionsChecks
from constructs import Construct
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from infra.settings import StackSettingsError

STACK_NAME = "SqsConsumer-deploy-role"
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
AUDIENCE = "sts.amazonaws.com"
# The CDK bootstrap's default qualifier; a project-only bootstrap (`cdk bootstrap --qualifier ...`)
# narrows the role to that bootstrap's roles.
DEFAULT_QUALIFIER = "hnb659fds"
DEPLOY_BOOTSTRAP_ROLES = ("deploy", "file-publishing", "lookup")
DIFF_BOOTSTRAP_ROLES = ("lookup",)


class DeployRoleSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    github_repository: str = Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
    deploy_environments: tuple[Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,30}$")], ...] = Field(
        default=("dev", "prod"), min_length=1
    )
    diff_environments: tuple[str, ...] = Field(default=("prod-diff",), min_length=1)
    oidc_provider_arn: str | None = Field(
        default=None, pattern=rf"^arn:aws[a-z-]*:iam::\d{{12}}:oidc-provider/{GITHUB_OIDC_HOST}$"
    )
    cdk_qualifier: str = Field(default=DEFAULT_QUALIFIER, pattern=r"^[a-z0-9]{1,10}$")

    @classmethod
    def from_context(cls, app: App) -> DeployRoleSettings:
        values = {
            name: app.node.try_get_context(name)
            for name in ("github_repository", "oidc_provider_arn", "cdk_qualifier", "deploy_environments")
            if app.node.try_get_context(name)
        }
        if isinstance(values.get("deploy_environments"), str):
            values["deploy_environments"] = tuple(values["deploy_environments"].replace(",", " ").split())
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
                for error in exc.errors(include_url=False)
            )
            raise StackSettingsError(
                f"invalid deploy role settings: {problems} (make deploy-role GITHUB_REPOSITORY=owner/name)"
            ) from None


class DeployRoleStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, settings: DeployRoleSettings, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        provider_arn = settings.oidc_provider_arn
        if provider_arn is None:
            provider = iam.CfnOIDCProvider(self, "GitHubOidcProvider", url=f"https://{GITHUB_OIDC_HOST}",
                                           client_id_list=[AUDIENCE])  # fmt: skip
            provider_arn = provider.attr_arn
        # One role per environment: a role trusts one environment's token, so a dev job cannot deploy prod.
        self.deploy_roles = {
            name: self._github_role(
                f"GitHubDeployRole{name.title().replace('-', '')}", settings, provider_arn, (name,),
                DEPLOY_BOOTSTRAP_ROLES,
            )
            for name in settings.deploy_environments
        }  # fmt: skip
        for name, role in self.deploy_roles.items():
            self._allow_smoke_test(role, name)
            CfnOutput(self, f"DeployRoleArn{name.title().replace('-', '')}", value=role.role_arn,
                      description=f"AWS_DEPLOY_ROLE_ARN, a variable of the {name} GitHub environment")  # fmt: skip
        self.diff_role = self._github_role(
            "GitHubDiffRole", settings, provider_arn, settings.diff_environments, DIFF_BOOTSTRAP_ROLES
        )
        CfnOutput(self, "DiffRoleArn", value=self.diff_role.role_arn,
                  description="AWS_DIFF_ROLE_ARN, a variable of the prod-diff GitHub environment")  # fmt: skip

    def _allow_smoke_test(self, role: iam.Role, environment: str) -> None:
        """What the smoke test after a deploy needs, on the environment's own stage only: a canary into its
        queues, then its function's configuration (the table's name) and the canary's idempotency record."""
        prefix = f"SqsConsumer-{environment}-"

        def where(service: str, kind: str) -> str:
            return f"arn:{self.partition}:{service}:{self.region}:{self.account}:{kind}{prefix}*"

        arns = {
            "sqs:SendMessage": where("sqs", ""),
            "lambda:GetFunctionConfiguration": where("lambda", "function:"),
            "dynamodb:GetItem": where("dynamodb", "table/"),
        }
        role.add_to_policy(iam.PolicyStatement(sid="SmokeTestOwnStage", actions=sorted(arns),
                                               resources=sorted(arns.values())))  # fmt: skip
        reason = (f"The stage's resources have names CloudFormation generates under its stack's ({prefix}...): the "
                  "smoke test reaches that stage's queues, function and table only, never another stage's")  # fmt: skip
        for service, kind in (("sqs", ""), ("lambda", "function:"), ("dynamodb", "table/")):
            resource = f"arn:<AWS::Partition>:{service}:<AWS::Region>:<AWS::AccountId>:{kind}{prefix}*"
            finding = f"AwsSolutions::AwsSolutions-IAM5[Resource::{resource}]"
            Validations.of(role).acknowledge(Acknowledgment(id=finding, reason=reason))

    def _github_role(
        self,
        construct_id: str,
        settings: DeployRoleSettings,
        provider_arn: str,
        environments: tuple[str, ...],
        bootstrap_roles: tuple[str, ...],
    ) -> iam.Role:
        """A role for the repository's jobs in ``environments``, allowed only to assume ``bootstrap_roles``."""
        subjects = [f"repo:{settings.github_repository}:environment:{name}" for name in environments]
        role = iam.Role(
            self,
            construct_id,
            description=f"GitHub Actions of {settings.github_repository} in {', '.join(environments)}",
            max_session_duration=Duration.hours(1),
            assumed_by=iam.WebIdentityPrincipal(
                provider_arn,
                conditions={
                    "StringEquals": {f"{GITHUB_OIDC_HOST}:aud": AUDIENCE, f"{GITHUB_OIDC_HOST}:sub": subjects},
                },
            ),
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="AssumeCdkBootstrapRoles",
                actions=["sts:AssumeRole", "sts:TagSession"],
                resources=[
                    f"arn:{self.partition}:iam::{self.account}:role/cdk-{settings.cdk_qualifier}-{name}-role-"
                    f"{self.account}-{self.region}"
                    for name in bootstrap_roles
                ],
            )
        )
        return role


def build_deploy_role_app(app: App) -> DeployRoleStack:
    stack = DeployRoleStack(app, STACK_NAME, settings=DeployRoleSettings.from_context(app),
                            description="GitHub Actions deploy role for the SqsConsumer stages (OIDC)")  # fmt: skip
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return stack


if __name__ == "__main__":
    import sys

    cdk_app = App()
    try:
        build_deploy_role_app(cdk_app)
    except StackSettingsError as error:
        sys.exit(f"error: {error}")
    cdk_app.synth()
