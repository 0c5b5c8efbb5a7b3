"""EKS (``aws_eks_v2``: native CloudFormation, no kubectl Lambda) and its node groups.

One managed node group per zone for the Serve workers, so a zone's capacity is its own
group's to restore; a zone-spread group for render workers; a zone-spread system group for
the Ray heads and the controllers. Service accounts get IAM roles through IRSA.
"""

from __future__ import annotations

import json

from aws_cdk import CfnOutput, Fn, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from cluster.aws.data import BUCKETS, OPENSEARCH_DOMAIN, bucket_arn
from cluster.aws.suppress import checkov, nag_finding
from cluster.config import topology

NODE_POLICIES = (
    "AmazonEKSWorkerNodePolicy",
    "AmazonEC2ContainerRegistryReadOnly",
    "AmazonEKS_CNI_Policy",
    "AmazonSSMManagedInstanceCore",
)


class ComputeStack(Stack):
    """The EKS cluster, node groups and IRSA roles."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        data_key: kms.IKey,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        secrets_key = kms.Key(
            self,
            "EksSecretsKey",
            description="EKS envelope encryption of Kubernetes secrets",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.cluster = eks.Cluster(
            self,
            "Cluster",
            cluster_name=topology.CLUSTER_NAME,
            version=eks.KubernetesVersion.of(topology.KUBERNETES_VERSION),
            vpc=vpc,
            vpc_subnets=[ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)],
            # Managed node groups of our own (below), not Auto Mode and no default group.
            default_capacity_type=eks.DefaultCapacityType.NODEGROUP,
            default_capacity=0,
            endpoint_access=eks.EndpointAccess.PRIVATE,
            secrets_encryption_key=secrets_key,
            cluster_logging=[
                eks.ClusterLoggingTypes.API,
                eks.ClusterLoggingTypes.AUDIT,
                eks.ClusterLoggingTypes.AUTHENTICATOR,
                eks.ClusterLoggingTypes.CONTROLLER_MANAGER,
                eks.ClusterLoggingTypes.SCHEDULER,
            ],
        )
        # The VPC CNI enforces the NetworkPolicies in cluster/kuberay/network-policies.yaml.
        eks.Addon(
            self,
            "VpcCni",
            cluster=self.cluster,
            addon_name="vpc-cni",
            configuration_values={"enableNetworkPolicy": "true"},
        )
        for name in ("coredns", "kube-proxy"):
            eks.Addon(self, f"Addon-{name}", cluster=self.cluster, addon_name=name)

        node_role = iam.Role(
            self,
            "NodeRole",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name(name) for name in NODE_POLICIES
            ],
        )
        for name in NODE_POLICIES:
            nag_finding(
                node_role,
                f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{name}]",
                "AWS-maintained minimum policies an EKS managed node needs.",
            )
        self.nodegroups: dict[str, eks.Nodegroup] = {}
        for group in topology.NODE_GROUPS:
            self.nodegroups[group.name] = self.cluster.add_nodegroup_capacity(
                f"Nodes-{group.name}",
                nodegroup_name=group.name,
                node_role=node_role,
                instance_types=[ec2.InstanceType(t) for t in group.instance_types],
                min_size=group.min_size,
                desired_size=group.desired_size,
                max_size=group.max_size,
                labels=group.labels,
                taints=[
                    eks.TaintSpec(key=k, value=v, effect=eks.TaintEffect[effect])
                    for k, v, effect in group.taints
                ],
                subnets=ec2.SubnetSelection(
                    subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS,
                    availability_zones=list(group.zones),
                ),
                max_unavailable=1,
            )
        # Native IAM OIDC provider (the cluster's own property is a Lambda-backed resource).
        self.oidc = eks.OidcProviderNative(
            self, "Oidc", url=self.cluster.cluster_open_id_connect_issuer_url
        )
        self._irsa(data_key)
        self._cluster_nag()

    def _cluster_nag(self) -> None:
        cluster_role = self.cluster.node.try_find_child("Role")
        if cluster_role is not None:
            nag_finding(
                cluster_role,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonEKSClusterPolicy]",
                "AWS-maintained policy the EKS control plane role needs.",
            )

    def _irsa_role(self, sa: str, role_name: str, namespace: str) -> iam.Role:
        """An IAM role only the service account ``namespace/sa`` can assume (IRSA).

        The trust condition is keyed by the cluster's OIDC issuer, known only at deploy time.
        CDK's usual answer (``CfnJson``) is a Lambda-backed custom resource, so the trust
        policy is written as an ``Fn::Sub`` string that CloudFormation resolves itself.
        """
        role = iam.Role(
            self,
            f"Irsa-{sa}",
            role_name=role_name,
            assumed_by=iam.FederatedPrincipal(
                self.oidc.open_id_connect_provider_arn,
                assume_role_action="sts:AssumeRoleWithWebIdentity",
            ),
        )
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": "${ProviderArn}"},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {
                            "${Issuer}:sub": f"system:serviceaccount:{namespace}:{sa}",
                            "${Issuer}:aud": "sts.amazonaws.com",
                        }
                    },
                }
            ],
        }
        cfn_role = role.node.default_child
        assert isinstance(cfn_role, iam.CfnRole)
        cfn_role.add_property_override(
            "AssumeRolePolicyDocument",
            Fn.sub(
                json.dumps(trust),
                {
                    "ProviderArn": self.oidc.open_id_connect_provider_arn,
                    "Issuer": self.oidc.open_id_connect_provider_issuer,
                },
            ),
        )
        return role

    def _irsa(self, data_key: kms.IKey) -> None:
        self.irsa_roles: dict[str, iam.Role] = {}
        objects_reason = (
            "Object keys are created at run time; the grant is scoped to the tenants/ prefix "
            "every blob key starts with (tenancy rule), in the three named buckets."
        )
        for sa, role_name in topology.SERVICE_ACCOUNT_ROLES.items():
            role = self._irsa_role(sa, role_name, topology.NAMESPACE)
            self.irsa_roles[sa] = role
            objects = [f"{bucket_arn(p)}/tenants/*" for p in BUCKETS]
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=[
                        "s3:GetObject",
                        "s3:PutObject",
                        "s3:DeleteObject",
                        "s3:AbortMultipartUpload",
                    ],
                    resources=objects,
                )
            )
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["s3:ListBucket"], resources=[bucket_arn(p) for p in BUCKETS]
                )
            )
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                    resources=[data_key.key_arn],
                )
            )
            policy = role.node.find_child("DefaultPolicy")
            for resource in objects:
                nag_finding(policy, f"AwsSolutions-IAM5[Resource::{resource}]", objects_reason)
        serve = self.irsa_roles["pocdojo-serve"]
        serve.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "es:ESHttpGet",
                    "es:ESHttpHead",
                    "es:ESHttpPost",
                    "es:ESHttpPut",
                    "es:ESHttpDelete",
                ],
                resources=[
                    f"arn:aws:es:{topology.REGION}:{topology.ACCOUNT}:domain/{OPENSEARCH_DOMAIN}/*"
                ],
            )
        )
        nag_finding(
            serve.node.find_child("DefaultPolicy"),
            f"AwsSolutions-IAM5[Resource::arn:aws:es:{topology.REGION}:{topology.ACCOUNT}:"
            f"domain/{OPENSEARCH_DOMAIN}/*]",
            "Index names are per tenant and created at run time; the domain is fixed.",
        )
        alb = self._irsa_role(
            "aws-load-balancer-controller", topology.ALB_CONTROLLER_ROLE, "kube-system"
        )
        # The controller's documented permissions, condensed: it creates and tags ALBs, target
        # groups and security groups whose ids it cannot know in advance.
        alb.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "elasticloadbalancing:*",
                    "ec2:Describe*",
                    "ec2:CreateSecurityGroup",
                    "ec2:CreateTags",
                    "ec2:DeleteSecurityGroup",
                    "ec2:AuthorizeSecurityGroupIngress",
                    "ec2:RevokeSecurityGroupIngress",
                    "ec2:GetSecurityGroupsForVpc",
                    "acm:DescribeCertificate",
                    "acm:ListCertificates",
                    "wafv2:GetWebACL",
                    "wafv2:GetWebACLForResource",
                    "wafv2:AssociateWebACL",
                    "wafv2:DisassociateWebACL",
                    "shield:GetSubscriptionState",
                    "iam:CreateServiceLinkedRole",
                ],
                resources=["*"],
            )
        )
        reason = (
            "The AWS Load Balancer Controller creates load balancers, target groups and "
            "security groups at run time; their ARNs cannot be known here (AWS's published "
            "controller policy uses the same wildcards)."
        )
        policy = alb.node.find_child("DefaultPolicy")
        for finding in ("Action::elasticloadbalancing:*", "Action::ec2:Describe*", "Resource::*"):
            nag_finding(policy, f"AwsSolutions-IAM5[{finding}]", reason)
        checkov(policy, CKV_AWS_111=reason, CKV_AWS_109=reason)
        self.alb_controller_role = alb
        for sa, role in {**self.irsa_roles, "aws-load-balancer-controller": alb}.items():
            CfnOutput(self, f"RoleArn-{sa}", value=role.role_arn)
