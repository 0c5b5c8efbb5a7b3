"""CDK assertions on the synthesised templates: nothing single-zone, nothing public, no Lambda."""

from __future__ import annotations

import json
from typing import Any

from cluster.config import topology
from cluster.tests.support import Synth

AZS = set(topology.AVAILABILITY_ZONES)


def test_subnets_in_exactly_the_three_zones(synth: Synth) -> None:
    subnets = synth.resources("AWS::EC2::Subnet")
    zones = [s["Properties"]["AvailabilityZone"] for s in subnets.values()]
    assert set(zones) == AZS
    # public, private and data tiers: one subnet of each per zone
    assert sorted(zones) == sorted(list(AZS) * 3)


def test_one_nat_gateway_per_zone(synth: Synth) -> None:
    nats = synth.resources("AWS::EC2::NatGateway")
    assert len(nats) == 3
    subnets = synth.templates["PocDojoNetwork"]["Resources"]
    nat_zones = {
        subnets[n["Properties"]["SubnetId"]["Ref"]]["Properties"]["AvailabilityZone"]
        for n in nats.values()
    }
    assert nat_zones == AZS
    # every private subnet routes through the NAT of its own zone
    routes = synth.resources("AWS::EC2::Route")
    nat_routes = [r["Properties"] for r in routes.values() if "NatGatewayId" in r["Properties"]]
    assert len(nat_routes) == 3
    assert len({json.dumps(r["NatGatewayId"]) for r in nat_routes}) == 3


def test_no_lambda_function_in_any_template(synth: Synth) -> None:
    for name, template in synth.templates.items():
        types = {r["Type"] for r in template["Resources"].values()}
        assert "AWS::Lambda::Function" not in types, name
        assert not any(
            t.startswith("Custom::") or t == "AWS::CloudFormation::CustomResource" for t in types
        ), f"{name}: custom resources need a Lambda: {types}"


def test_postgres_multi_az_encrypted_with_kms(synth: Synth) -> None:
    db = synth.one("AWS::RDS::DBInstance")
    assert db["MultiAZ"] is True
    assert db["StorageEncrypted"] is True
    assert "Fn::GetAtt" in db["KmsKeyId"]
    assert db["PubliclyAccessible"] is False
    assert db["DeletionProtection"] is True
    assert db["BackupRetentionPeriod"] >= 7
    assert db["ManageMasterUserPassword"] is True
    groups = synth.resources("AWS::RDS::DBSubnetGroup")
    assert len(next(iter(groups.values()))["Properties"]["SubnetIds"]) == 3


def test_redis_multi_az_failover_two_replicas_tls(synth: Synth) -> None:
    redis = synth.one("AWS::ElastiCache::ReplicationGroup")
    assert redis["MultiAZEnabled"] is True
    assert redis["AutomaticFailoverEnabled"] is True
    assert redis["NumCacheClusters"] >= 3  # primary + >= 2 replicas
    assert set(redis["PreferredCacheClusterAZs"]) == AZS
    assert redis["TransitEncryptionEnabled"] is True
    assert redis["TransitEncryptionMode"] == "required"
    assert redis["AtRestEncryptionEnabled"] is True
    assert "AuthToken" in redis
    # Ray's GCS fault tolerance needs one keyspace: cluster mode off
    assert "NumNodeGroups" not in redis
    assert "ReplicasPerNodeGroup" not in redis


def test_opensearch_zone_aware_over_three_zones_with_dedicated_masters(synth: Synth) -> None:
    domain = synth.one("AWS::OpenSearchService::Domain")
    cluster = domain["ClusterConfig"]
    assert cluster["ZoneAwarenessEnabled"] is True
    assert cluster["ZoneAwarenessConfig"]["AvailabilityZoneCount"] == 3
    assert cluster["DedicatedMasterEnabled"] is True
    assert cluster["DedicatedMasterCount"] == 3
    assert cluster["InstanceCount"] % 3 == 0
    assert len(domain["VPCOptions"]["SubnetIds"]) == 3
    assert domain["EncryptionAtRestOptions"]["Enabled"] is True
    assert domain["NodeToNodeEncryptionOptions"]["Enabled"] is True
    assert domain["DomainEndpointOptions"]["EnforceHTTPS"] is True


def test_one_single_zone_node_group_per_zone_for_serve(synth: Synth) -> None:
    groups = synth.resources("AWS::EKS::Nodegroup")
    network = synth.templates["PocDojoNetwork"]
    outputs = {
        o["Export"]["Name"]: k for k, o in network.get("Outputs", {}).items() if "Export" in o
    }

    def zones_of(props: dict[str, Any]) -> set[str]:
        zones = set()
        for subnet in props["Subnets"]:
            export = subnet["Fn::ImportValue"]
            ref = network["Outputs"][outputs[export]]["Value"]["Ref"]
            zones.add(network["Resources"][ref]["Properties"]["AvailabilityZone"])
        return zones

    serve = {
        g["Properties"]["NodegroupName"]: g["Properties"]
        for g in groups.values()
        if g["Properties"]["Labels"].get("pocdojo.io/pool") == "serve"
    }
    assert len(serve) == 3
    assert [z for p in serve.values() for z in zones_of(p)]
    assert {frozenset(zones_of(p)) for p in serve.values()} == {frozenset({z}) for z in AZS}
    for props in serve.values():
        assert props["ScalingConfig"]["MinSize"] >= 1
    render = [
        g["Properties"]
        for g in groups.values()
        if g["Properties"]["Labels"].get("pocdojo.io/pool") == "render"
    ]
    assert len(render) == 1
    assert zones_of(render[0]) == AZS


def test_eks_is_native_v2_with_private_endpoint_and_network_policies(synth: Synth) -> None:
    cluster = synth.one("AWS::EKS::Cluster")
    assert cluster["ResourcesVpcConfig"]["EndpointPublicAccess"] is False
    assert cluster["EncryptionConfig"]
    cni = [
        a["Properties"]
        for a in synth.resources("AWS::EKS::Addon").values()
        if a["Properties"]["AddonName"] == "vpc-cni"
    ]
    assert json.loads(cni[0]["ConfigurationValues"]) == {"enableNetworkPolicy": "true"}
    assert synth.resources("AWS::IAM::OIDCProvider")


def test_irsa_roles_trust_only_their_service_account(synth: Synth) -> None:
    roles = synth.resources("AWS::IAM::Role", "PocDojoCompute")
    irsa = {
        r["Properties"]["RoleName"]: r["Properties"]
        for r in roles.values()
        if "RoleName" in r["Properties"]
    }
    assert set(irsa) == {
        f"{topology.CLUSTER_NAME}-{n}" for n in ("serve", "render", "alb-controller")
    }
    for name, props in irsa.items():
        body, _ = props["AssumeRolePolicyDocument"]["Fn::Sub"]
        trust = json.loads(body)
        (statement,) = trust["Statement"]
        assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
        sub = statement["Condition"]["StringEquals"]["${Issuer}:sub"]
        assert sub.startswith("system:serviceaccount:"), name


def test_buckets_kms_encrypted_private_tls_only_with_lifecycle(synth: Synth) -> None:
    buckets = synth.resources("AWS::S3::Bucket")
    names = {b["Properties"]["BucketName"].split("-")[2] for b in buckets.values()}
    assert names == {"media", "videos", "exports"}
    policies = [p["Properties"] for p in synth.resources("AWS::S3::BucketPolicy").values()]
    for logical_id, bucket in buckets.items():
        props = bucket["Properties"]
        (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms", logical_id
        assert "KMSMasterKeyID" in rule["ServerSideEncryptionByDefault"]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        assert props["LifecycleConfiguration"]["Rules"]
        ref = logical_id.split("/")[1]
        (policy,) = [p for p in policies if p["Bucket"] == {"Ref": ref}]
        deny_insecure = [
            s
            for s in policy["PolicyDocument"]["Statement"]
            if s["Effect"] == "Deny"
            and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        ]
        assert deny_insecure, f"{logical_id} allows plain HTTP"


def test_cognito_pool_has_tenant_attribute_and_role_groups(synth: Synth) -> None:
    pool = synth.one("AWS::Cognito::UserPool")
    attrs = {a["Name"]: a for a in pool["Schema"]}
    assert attrs["tenant_id"]["Mutable"] is False
    assert pool["MfaConfiguration"] == "ON"
    groups = {
        g["Properties"]["GroupName"]
        for g in synth.resources("AWS::Cognito::UserPoolGroup").values()
    }
    assert groups == {"admin", "member"}
    client = synth.one("AWS::Cognito::UserPoolClient")
    assert client["GenerateSecret"] is False
    assert "custom:tenant_id" not in client.get("WriteAttributes", [])


def test_waf_managed_rules_and_dns_health_check(synth: Synth) -> None:
    acl = synth.one("AWS::WAFv2::WebACL")
    assert acl["Scope"] == "REGIONAL"
    managed = {
        r["Statement"]["ManagedRuleGroupStatement"]["Name"]
        for r in acl["Rules"]
        if "ManagedRuleGroupStatement" in r["Statement"]
    }
    assert {"AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet"} <= managed
    assert synth.resources("AWS::WAFv2::LoggingConfiguration")
    check = synth.one("AWS::Route53::HealthCheck")["HealthCheckConfig"]
    assert check["Type"] == "HTTPS"
    assert check["ResourcePath"] == "/readyz"
    record = synth.one("AWS::Route53::RecordSet")
    edge = synth.templates["PocDojoEdge"]
    (with_record,) = [
        r for r in edge["Resources"].values() if r["Type"] == "AWS::Route53::RecordSet"
    ]
    assert with_record["Condition"] in edge["Conditions"]  # created once the ALB exists
    assert record["HealthCheckId"]
    assert record["AliasTarget"]["EvaluateTargetHealth"] is True
    assert synth.one("AWS::CertificateManager::Certificate")["DomainName"] == topology.API_DOMAIN
