"""Managed data stores, all spread over the three zones and encrypted with one KMS key.

RDS PostgreSQL (Multi-AZ), ElastiCache Redis (Multi-AZ, automatic failover, two replicas,
TLS; also the Ray GCS fault-tolerance store, so cluster mode is off), Amazon OpenSearch
Service (zone awareness over three zones, dedicated masters) and the S3 buckets.
"""

from __future__ import annotations

import json

from aws_cdk import CfnDeletionPolicy, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_opensearchservice as opensearch
from aws_cdk import aws_rds as rds
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from cluster.aws.suppress import checkov, nag, nag_finding
from cluster.config import topology

POSTGRES_PORT = 5433  # not the default port (cdk-nag RDS11); set in POCDOJO_DATABASE_URL
REDIS_PORT = 6380  # not the default port (cdk-nag AEC5); set in POCDOJO_REDIS_URL
OPENSEARCH_DOMAIN = f"{topology.ENV_NAME}-pocdojo-search"
#: Buckets by purpose; the IRSA role of the Serve workers gets read/write on all three.
BUCKETS = ("media", "videos", "exports")

NO_ROTATION_LAMBDA = (
    "Secrets Manager rotation runs a Lambda function and this platform runs none; the "
    "Redis AUTH token is rotated by the runbook in cluster/README.md (AuthTokenUpdateStrategy "
    "ROTATE, then SET) and access is limited to the Serve workers' IRSA role."
)


def iam_role_arn(name: str) -> str:
    """ARN of a role this app creates with a fixed name (IRSA roles, see compute.py)."""
    return f"arn:aws:iam::{topology.ACCOUNT}:role/{name}"


SERVE_ROLE_NAME = topology.SERVICE_ACCOUNT_ROLES["pocdojo-serve"]


def bucket_name(purpose: str) -> str:
    """Fixed bucket names, so policies and settings (POCDOJO_BLOB_URL) can name them."""
    return f"{topology.CLUSTER_NAME}-{purpose}-{topology.ACCOUNT}-{topology.REGION}"


def bucket_arn(purpose: str) -> str:
    return f"arn:aws:s3:::{bucket_name(purpose)}"


class DataStack(Stack):
    """KMS key, PostgreSQL, Redis, OpenSearch and S3."""

    def __init__(self, scope: Construct, construct_id: str, *, vpc: ec2.IVpc, **kwargs: object):
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.vpc = vpc
        self.key = kms.Key(
            self,
            "DataKey",
            description="PoC Dojo data at rest: RDS, ElastiCache, OpenSearch, S3, logs",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.key.grant_encrypt_decrypt(
            iam.ServicePrincipal(f"logs.{topology.REGION}.amazonaws.com")
        )
        isolated = vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
        self.data_subnet_ids = isolated.subnet_ids
        self._postgres()
        self._redis()
        self._opensearch()
        self.buckets = {purpose: self._bucket(purpose) for purpose in BUCKETS}
        # What the Kubernetes manifests need (cluster/kuberay/render.py --outputs).
        CfnOutput(self, "RedisEndpoint", value=self.redis.attr_primary_end_point_address)
        CfnOutput(self, "PostgresEndpoint", value=self.postgres.attr_endpoint_address)
        CfnOutput(self, "SearchEndpoint", value=self.search.attr_domain_endpoint)
        CfnOutput(self, "RedisAuthSecretArn", value=self.redis_auth.secret_arn)

    def _security_group(self, name: str, port: int, what: str) -> ec2.SecurityGroup:
        group = ec2.SecurityGroup(
            self, f"{name}Sg", vpc=self.vpc, description=what, allow_all_outbound=False
        )
        # Only the private (node) subnets reach the data stores.
        for subnet in self.vpc.private_subnets:
            group.add_ingress_rule(
                ec2.Peer.ipv4(subnet.ipv4_cidr_block), ec2.Port.tcp(port), f"{what} from nodes"
            )
        return group

    def _postgres(self) -> None:
        group = self._security_group("Postgres", POSTGRES_PORT, "PostgreSQL")
        subnets = rds.CfnDBSubnetGroup(
            self,
            "PostgresSubnets",
            db_subnet_group_description="PoC Dojo PostgreSQL, three zones",
            subnet_ids=self.data_subnet_ids,
        )
        params = rds.CfnDBParameterGroup(
            self,
            "PostgresParams",
            family="postgres17",
            description="PoC Dojo: TLS only, statement logging of slow queries",
            parameters={
                "rds.force_ssl": "1",
                "log_min_duration_statement": "500",
                "shared_preload_libraries": "pg_stat_statements",
            },
        )
        monitoring = iam.Role(
            self,
            "PostgresMonitoringRole",
            assumed_by=iam.ServicePrincipal("monitoring.rds.amazonaws.com"),
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name(
                    "service-role/AmazonRDSEnhancedMonitoringRole"
                )
            ],
        )
        nag_finding(
            monitoring,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/"
            "service-role/AmazonRDSEnhancedMonitoringRole]",
            "AWS-maintained minimum policy for RDS enhanced monitoring.",
        )
        self.postgres = rds.CfnDBInstance(
            self,
            "Postgres",
            engine="postgres",
            engine_version="17.6",
            db_instance_class="db.r7g.large",
            allocated_storage="200",
            max_allocated_storage=1000,
            storage_type="gp3",
            multi_az=True,  # synchronous standby in a second zone, automatic failover
            storage_encrypted=True,
            kms_key_id=self.key.key_arn,
            # RDS keeps and rotates the master password in Secrets Manager itself: no Lambda.
            manage_master_user_password=True,
            master_user_secret=rds.CfnDBInstance.MasterUserSecretProperty(
                kms_key_id=self.key.key_arn
            ),
            master_username="pocdojo_admin",
            db_name="pocdojo",
            port=str(POSTGRES_PORT),
            db_subnet_group_name=subnets.ref,
            db_parameter_group_name=params.ref,
            vpc_security_groups=[group.security_group_id],
            publicly_accessible=False,
            deletion_protection=True,
            backup_retention_period=14,
            copy_tags_to_snapshot=True,
            auto_minor_version_upgrade=True,
            enable_iam_database_authentication=True,
            enable_performance_insights=True,
            performance_insights_kms_key_id=self.key.key_arn,
            performance_insights_retention_period=7,
            monitoring_interval=30,
            monitoring_role_arn=monitoring.role_arn,
            enable_cloudwatch_logs_exports=["postgresql", "upgrade"],
        )
        self.postgres.cfn_options.deletion_policy = CfnDeletionPolicy.SNAPSHOT
        self.postgres.cfn_options.update_replace_policy = CfnDeletionPolicy.SNAPSHOT

    def _redis(self) -> None:
        group = self._security_group("Redis", REDIS_PORT, "Redis")
        subnets = elasticache.CfnSubnetGroup(
            self,
            "RedisSubnets",
            description="PoC Dojo Redis, three zones",
            subnet_ids=self.data_subnet_ids,
        )
        self.redis_auth = secretsmanager.Secret(
            self,
            "RedisAuthToken",
            description="Redis AUTH token (also used by Ray GCS fault tolerance)",
            encryption_key=self.key,
            generate_secret_string=secretsmanager.SecretStringGenerator(
                exclude_punctuation=True, password_length=64
            ),
        )
        nag(self.redis_auth, AwsSolutions_SMG4=NO_ROTATION_LAMBDA)
        checkov(self.redis_auth, CKV2_AWS_57=NO_ROTATION_LAMBDA)
        slow_log = logs.LogGroup(
            self,
            "RedisSlowLog",
            retention=logs.RetentionDays.ONE_YEAR,
            encryption_key=self.key,
            removal_policy=RemovalPolicy.RETAIN,
        )
        zones = list(topology.AVAILABILITY_ZONES)
        self.redis = elasticache.CfnReplicationGroup(
            self,
            "Redis",
            replication_group_description="PoC Dojo Redis: streams, pub/sub, Ray GCS FT",
            engine="redis",
            engine_version="7.1",
            cache_node_type="cache.r7g.large",
            # Cluster mode off (Ray's GCS store needs one keyspace): a primary and two
            # replicas, one per zone, promoted automatically when the primary's zone fails.
            num_cache_clusters=len(zones),
            preferred_cache_cluster_a_zs=zones,
            multi_az_enabled=True,
            automatic_failover_enabled=True,
            port=REDIS_PORT,
            cache_subnet_group_name=subnets.ref,
            security_group_ids=[group.security_group_id],
            at_rest_encryption_enabled=True,
            kms_key_id=self.key.key_arn,
            transit_encryption_enabled=True,
            transit_encryption_mode="required",
            auth_token=self.redis_auth.secret_value.unsafe_unwrap(),
            snapshot_retention_limit=7,
            auto_minor_version_upgrade=True,
            log_delivery_configurations=[
                elasticache.CfnReplicationGroup.LogDeliveryConfigurationRequestProperty(
                    destination_type="cloudwatch-logs",
                    log_format="json",
                    log_type="slow-log",
                    destination_details=elasticache.CfnReplicationGroup.DestinationDetailsProperty(
                        cloud_watch_logs_details=elasticache.CfnReplicationGroup.CloudWatchLogsDestinationDetailsProperty(
                            log_group=slow_log.log_group_name
                        )
                    ),
                )
            ],
        )
        self.redis.cfn_options.deletion_policy = CfnDeletionPolicy.SNAPSHOT
        self.redis.cfn_options.update_replace_policy = CfnDeletionPolicy.SNAPSHOT

    def _opensearch(self) -> None:
        group = self._security_group("Search", 443, "OpenSearch")
        log_groups = {
            kind: logs.LogGroup(
                self,
                f"Search{kind.title().replace('_', '')}Logs",
                retention=logs.RetentionDays.ONE_YEAR,
                encryption_key=self.key,
                removal_policy=RemovalPolicy.RETAIN,
            )
            for kind in ("SEARCH_SLOW_LOGS", "INDEX_SLOW_LOGS", "ES_APPLICATION_LOGS", "AUDIT_LOGS")
        }
        # Native resource policy instead of the Domain construct's custom resource (a Lambda).
        logs.CfnResourcePolicy(
            self,
            "SearchLogsPolicy",
            policy_name="pocdojo-opensearch-logs",
            policy_document=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "es.amazonaws.com"},
                            "Action": ["logs:PutLogEvents", "logs:CreateLogStream"],
                            "Resource": [g.log_group_arn for g in log_groups.values()],
                        }
                    ],
                }
            ),
        )
        zones = len(topology.AVAILABILITY_ZONES)
        domain_arn = f"arn:aws:es:{topology.REGION}:{topology.ACCOUNT}:domain/{OPENSEARCH_DOMAIN}/*"
        self.search = opensearch.CfnDomain(
            self,
            "Search",
            domain_name=OPENSEARCH_DOMAIN,
            engine_version="OpenSearch_2.19",
            cluster_config=opensearch.CfnDomain.ClusterConfigProperty(
                instance_type="r7g.large.search",
                instance_count=zones * 2,
                dedicated_master_enabled=True,
                dedicated_master_count=3,
                dedicated_master_type="m7g.large.search",
                zone_awareness_enabled=True,
                zone_awareness_config=opensearch.CfnDomain.ZoneAwarenessConfigProperty(
                    availability_zone_count=zones
                ),
            ),
            ebs_options=opensearch.CfnDomain.EBSOptionsProperty(
                ebs_enabled=True, volume_type="gp3", volume_size=200
            ),
            vpc_options=opensearch.CfnDomain.VPCOptionsProperty(
                subnet_ids=self.data_subnet_ids, security_group_ids=[group.security_group_id]
            ),
            encryption_at_rest_options=opensearch.CfnDomain.EncryptionAtRestOptionsProperty(
                enabled=True, kms_key_id=self.key.key_id
            ),
            node_to_node_encryption_options=opensearch.CfnDomain.NodeToNodeEncryptionOptionsProperty(
                enabled=True
            ),
            domain_endpoint_options=opensearch.CfnDomain.DomainEndpointOptionsProperty(
                enforce_https=True, tls_security_policy="Policy-Min-TLS-1-2-PFS-2023-10"
            ),
            advanced_security_options=opensearch.CfnDomain.AdvancedSecurityOptionsInputProperty(
                enabled=True,
                internal_user_database_enabled=False,
                master_user_options=opensearch.CfnDomain.MasterUserOptionsProperty(
                    master_user_arn=iam_role_arn(SERVE_ROLE_NAME)
                ),
            ),
            log_publishing_options={
                kind: opensearch.CfnDomain.LogPublishingOptionProperty(
                    cloud_watch_logs_log_group_arn=group_.log_group_arn, enabled=True
                )
                for kind, group_ in log_groups.items()
            },
            access_policies={
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": iam_role_arn(SERVE_ROLE_NAME)},
                        "Action": [
                            "es:ESHttpGet",
                            "es:ESHttpHead",
                            "es:ESHttpPost",
                            "es:ESHttpPut",
                            "es:ESHttpDelete",
                        ],
                        "Resource": domain_arn,
                    }
                ],
            },
        )
        self.search.cfn_options.deletion_policy = CfnDeletionPolicy.RETAIN
        self.search.cfn_options.update_replace_policy = CfnDeletionPolicy.RETAIN
        nag(
            self.search,
            AwsSolutions_OS3=(
                "The domain is reachable only inside the VPC (isolated subnets, a security "
                "group open to the node subnets) and its access policy names one IAM role; pod "
                "IPs change, so an IP allowlist would add nothing."
            ),
        )

    def _bucket(self, purpose: str) -> s3.Bucket:
        rules = [
            s3.LifecycleRule(
                id="abort-incomplete-uploads",
                abort_incomplete_multipart_upload_after=Duration.days(2),
            ),
            s3.LifecycleRule(
                id="expire-old-versions", noncurrent_version_expiration=Duration.days(30)
            ),
        ]
        if purpose == "exports":
            # Exports are re-creatable downloads: a week is plenty.
            rules.append(s3.LifecycleRule(id="expire-exports", expiration=Duration.days(7)))
        else:
            rules.append(
                s3.LifecycleRule(
                    id="infrequent-access",
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.INTELLIGENT_TIERING,
                            transition_after=Duration.days(30),
                        )
                    ],
                )
            )
        bucket = s3.Bucket(
            self,
            f"{purpose.title()}Bucket",
            bucket_name=bucket_name(purpose),
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=rules,
            removal_policy=RemovalPolicy.RETAIN,
        )
        reason = (
            "S3 server access logs cannot be delivered to an SSE-KMS bucket and every bucket "
            "here is SSE-KMS; object access is audited by the account's CloudTrail S3 data "
            "events instead."
        )
        nag(bucket, AwsSolutions_S1=reason)
        checkov(
            bucket,
            CKV_AWS_18=reason,
            CKV_AWS_144=(
                "Objects are re-creatable or user uploads with versioning; cross-region "
                "replication is a disaster-recovery decision outside this single-region app."
            ),
        )
        return bucket
