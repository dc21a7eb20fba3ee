"""The function's place in an existing VPC: private subnets, a security group, the endpoints it calls.

The VPC is named by ids in the stage's settings (``vpc``), never looked up, so synth stays offline.
The function's own calls are SQS (quarantine, backoff), DynamoDB (idempotency), S3 (offloaded
payloads, from the stage's payload bucket) and, when the stage names secrets, Secrets Manager. Its
logs and metrics leave through Lambda's service, not the VPC, and the mapping polls the queue from
Lambda's side too: no Logs or Monitoring endpoint is needed.

HTTPS out goes only where each egress mode needs it: the endpoints' security group and the region's
DynamoDB and S3 prefix lists (``endpoints``, ``existing_endpoints``), or anywhere through the NAT (``nat``).
The endpoints this stack makes are the VPC's: an interface endpoint with private DNS answers every SQS
(or Secrets Manager) call in the VPC, a gateway endpoint every S3 (or DynamoDB) call from its route
tables. So their policies never name this stage's resources, which would deny a second stage using them
(``existing_endpoints``) and any other workload there: they allow any call by a principal of the
stack's account, and refuse another account's credentials (the way data leaves through an endpoint).
What the function may reach is its role's to say (docs/decisions/030-vpc-endpoints.md).
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.settings import VpcPlacement

HTTPS = ec2.Port.tcp(443)
# What the function's role needs to run in a VPC: Lambda creates and deletes the function's
# network interfaces with the function's own permissions, and refuses CreateFunction without them.
# https://docs.aws.amazon.com/lambda/latest/dg/configuration-vpc.html#configuration-vpc-permissions
ENI_ACTIONS = (
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
)


class VpcPlacementConstruct(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, placement: VpcPlacement, *, secrets: bool, dynamodb: bool
    ) -> None:
        super().__init__(scope, construct_id)
        self.placement = placement
        self.vpc = ec2.Vpc.from_vpc_attributes(
            self,
            "Vpc",
            vpc_id=placement.vpc_id,
            availability_zones=list(placement.availability_zones),
            private_subnet_ids=list(placement.private_subnet_ids),
            private_subnet_route_table_ids=list(placement.private_subnet_route_table_ids),
        )
        self.subnets = ec2.SubnetSelection(subnets=self.vpc.private_subnets)
        self.security_group = ec2.SecurityGroup(
            self,
            "FunctionSecurityGroup",
            vpc=self.vpc,
            description="SQS consumer function: HTTPS out to the AWS APIs it calls, nothing in",
            allow_all_outbound=False,
        )
        self.interface_endpoints: dict[str, ec2.InterfaceVpcEndpoint] = {}
        self.gateway_endpoints: dict[str, ec2.GatewayVpcEndpoint] = {}
        if placement.egress == "nat":
            self.security_group.add_egress_rule(ec2.Peer.any_ipv4(), HTTPS, "HTTPS to AWS APIs through the NAT")
            return
        if placement.egress == "endpoints":
            self._make_endpoints(secrets=secrets, dynamodb=dynamodb)
        else:
            for index, group_id in enumerate(placement.endpoint_security_group_ids):
                existing = ec2.SecurityGroup.from_security_group_id(self, f"ExistingEndpointGroup{index}", group_id)
                self.security_group.connections.allow_to(existing, HTTPS, "HTTPS to the VPC's interface endpoints")
        if dynamodb:
            assert placement.dynamodb_prefix_list_id is not None  # the settings' rules require it
            self.security_group.add_egress_rule(
                ec2.Peer.prefix_list(placement.dynamodb_prefix_list_id), HTTPS, "HTTPS to DynamoDB (gateway endpoint)"
            )
        assert placement.s3_prefix_list_id is not None  # the settings' rules require it
        self.security_group.add_egress_rule(
            ec2.Peer.prefix_list(placement.s3_prefix_list_id),
            HTTPS,
            "HTTPS to S3, the payload bucket (gateway endpoint)",
        )

    @property
    def endpoints(self) -> list[ec2.IVpcEndpoint]:
        return [*self.interface_endpoints.values(), *self.gateway_endpoints.values()]

    def _make_endpoints(self, *, secrets: bool, dynamodb: bool) -> None:
        endpoint_group = ec2.SecurityGroup(
            self,
            "EndpointSecurityGroup",
            vpc=self.vpc,
            description="Interface endpoints of the SQS consumer: HTTPS from the function only",
            allow_all_outbound=False,
        )
        self.security_group.connections.allow_to(endpoint_group, HTTPS, "HTTPS to the interface endpoints")
        interfaces = [("sqs", "Sqs", ec2.InterfaceVpcEndpointAwsService.SQS)]
        if secrets:
            interfaces.append(("secretsmanager", "SecretsManager", ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER))
        for service, name, endpoint_service in interfaces:
            self.interface_endpoints[service] = self.vpc.add_interface_endpoint(
                f"{name}Endpoint",
                service=endpoint_service,
                subnets=self.subnets,
                security_groups=[endpoint_group],
                private_dns_enabled=True,
                open=False,  # reachable from the function's group only (the rule above)
            )
        if dynamodb:
            self.gateway_endpoints["dynamodb"] = self.vpc.add_gateway_endpoint(
                "DynamoDbEndpoint", service=ec2.GatewayVpcEndpointAwsService.DYNAMODB, subnets=[self.subnets]
            )
        # Every stage has a payload bucket. The endpoint's policy applies to all S3 traffic of these
        # route tables, like the DynamoDB one's (docs/decisions/049-payload-bucket.md): hence scoped to
        # the account, not to this stage's bucket.
        self.gateway_endpoints["s3"] = self.vpc.add_gateway_endpoint(
            "S3Endpoint", service=ec2.GatewayVpcEndpointAwsService.S3, subnets=[self.subnets]
        )
        self._scope_to_the_account()

    def _scope_to_the_account(self) -> None:
        """One statement on each endpoint this stack makes: any call by a principal of the stack's account."""
        account = Stack.of(self).account
        made: list[ec2.InterfaceVpcEndpoint | ec2.GatewayVpcEndpoint] = [
            *self.interface_endpoints.values(),
            *self.gateway_endpoints.values(),
        ]
        for endpoint in made:
            endpoint.add_to_policy(iam.PolicyStatement(
                sid="PrincipalsOfThisAccount", principals=[iam.AnyPrincipal()], actions=["*"], resources=["*"],
                conditions={"StringEquals": {"aws:PrincipalAccount": account}},
            ))  # fmt: skip
