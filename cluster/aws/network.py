"""The VPC: exactly three availability zones, one NAT gateway per zone, flow logs."""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from cluster.aws.suppress import checkov
from cluster.config import topology


class NetworkStack(Stack):
    """Public subnets (ALB, NAT), private subnets (EKS nodes), isolated subnets (data stores)."""

    def __init__(self, scope: Construct, construct_id: str, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.logs_key = kms.Key(
            self,
            "FlowLogKey",
            description="VPC flow logs",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.logs_key.grant_encrypt_decrypt(
            iam.ServicePrincipal(f"logs.{topology.REGION}.amazonaws.com")
        )
        flow_log_group = logs.LogGroup(
            self,
            "FlowLogs",
            retention=logs.RetentionDays.ONE_YEAR,
            encryption_key=self.logs_key,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(topology.VPC_CIDR),
            # Explicit zones: without them a stack gets two zones or dummy names.
            availability_zones=list(topology.AVAILABILITY_ZONES),
            # One NAT per zone: a zone outage must not cut the other zones' egress.
            nat_gateways=len(topology.AVAILABILITY_ZONES),
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=22
                ),
                ec2.SubnetConfiguration(
                    name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=19
                ),
                ec2.SubnetConfiguration(
                    name="data", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24
                ),
            ],
            flow_logs={
                "all": ec2.FlowLogOptions(
                    destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_log_group),
                    traffic_type=ec2.FlowLogTrafficType.ALL,
                )
            },
            # True would add a custom resource backed by a Lambda function; the default
            # security group is unused (every resource gets its own group).
            restrict_default_security_group=False,
        )
        # Gateway endpoint: S3 traffic of the nodes stays off the NAT gateways.
        self.vpc.add_gateway_endpoint("S3", service=ec2.GatewayVpcEndpointAwsService.S3)
        for subnet in self.vpc.public_subnets:
            checkov(
                subnet,
                CKV_AWS_130=(
                    "Public subnets hold only the internet-facing ALB and the NAT gateways; "
                    "the load balancer controller needs public IPs there."
                ),
            )
