"""The function's place in an existing VPC: private subnets, a security group, the endpoints it calls.

The VPC is named by ids in the stage's settings (``vpc``), never looked up, so synth stays offline.
The function's own calls are SQS (quarantine, backoff), DynamoDB (idempotency) and, when the stage
names secrets, Secrets Manager. Its logs and metrics leave through Lambda's service, not the VPC,
and the mapping polls the queue from Lambda's side too: no Logs or Monitoring endpoint is needed.
"""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from infra.settings import StackSettings, VpcPlacement

HTTPS = ec2.Port.tcp(443)


class VpcPlacementConstruct(Construct):
    def __init__(self, scope: Construct, construct_id: str, placement: VpcPlacement, settings: StackSettings) -> None:
        super().__init__(scope, construct_id)
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
            description="SQS consumer function: HTTPS out to AWS APIs, nothing in",
            allow_all_outbound=False,
        )
        self.security_group.add_egress_rule(ec2.Peer.ipv4("0.0.0.0/0"), HTTPS, "HTTPS to AWS APIs (endpoints or NAT)")
        self.endpoints: list[ec2.IVpcEndpoint] = []
        if placement.egress != "endpoints":
            return
        endpoint_group = ec2.SecurityGroup(
            self,
            "EndpointSecurityGroup",
            vpc=self.vpc,
            description="Interface endpoints of the SQS consumer: HTTPS from the function only",
            allow_all_outbound=False,
        )
        endpoint_group.add_ingress_rule(self.security_group, HTTPS, "HTTPS from the consumer function")
        interfaces = [("Sqs", ec2.InterfaceVpcEndpointAwsService.SQS)]
        if settings.secrets:
            interfaces.append(("SecretsManager", ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER))
        for name, service in interfaces:
            self.endpoints.append(
                self.vpc.add_interface_endpoint(
                    f"{name}Endpoint",
                    service=service,
                    subnets=self.subnets,
                    security_groups=[endpoint_group],
                    private_dns_enabled=True,
                    open=False,  # reachable from the function's group only (the ingress rule above)
                )
            )
        if settings.idempotency:
            self.endpoints.append(
                self.vpc.add_gateway_endpoint(
                    "DynamoDbEndpoint", service=ec2.GatewayVpcEndpointAwsService.DYNAMODB, subnets=[self.subnets]
                )
            )
