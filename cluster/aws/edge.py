"""The edge: Cognito (the production OIDC issuer), WAF for the ALB, the certificate, DNS.

The ALB itself is created by the AWS Load Balancer Controller from the Ingress in
``cluster/kuberay/ingress.yaml``; that Ingress names this stack's WAF web ACL and
certificate by their outputs. Route 53 points the API name at the ALB and checks its health.
"""

from __future__ import annotations

from aws_cdk import CfnCondition, CfnOutput, CfnParameter, Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from cluster.config import topology

#: AWS managed rule groups on the web ACL, evaluated in this order.
MANAGED_RULE_GROUPS = (
    "AWSManagedRulesAmazonIpReputationList",
    "AWSManagedRulesCommonRuleSet",
    "AWSManagedRulesKnownBadInputsRuleSet",
    "AWSManagedRulesSQLiRuleSet",
)
#: Requests per 5 minutes per client IP before the rate rule blocks.
RATE_LIMIT = 6000
ROLE_GROUPS = ("admin", "member")
#: Imported, not created: the zone is delegated from the registrar once, by hand.
HOSTED_ZONE_ID = "Z0123456789POCDOJO"


class EdgeStack(Stack):
    """Cognito user pool, WAF web ACL, ACM certificate, Route 53 record and health check."""

    def __init__(self, scope: Construct, construct_id: str, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self._user_pool()
        self._waf()
        self._dns()

    def _user_pool(self) -> None:
        self.user_pool = cognito.UserPool(
            self,
            "Users",
            user_pool_name=f"{topology.ENV_NAME}-pocdojo",
            self_sign_up_enabled=False,  # tenant admins invite members
            sign_in_aliases=cognito.SignInAliases(email=True),
            sign_in_case_sensitive=False,
            # The tenant comes only from a verified token: set by the invitation, never by the
            # user (immutable, and the app client cannot write it).
            custom_attributes={
                "tenant_id": cognito.StringAttribute(min_len=36, max_len=36, mutable=False)
            },
            password_policy=cognito.PasswordPolicy(
                min_length=12,
                require_digits=True,
                require_lowercase=True,
                require_uppercase=True,
                require_symbols=True,
            ),
            mfa=cognito.Mfa.REQUIRED,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            feature_plan=cognito.FeaturePlan.PLUS,
            standard_threat_protection_mode=cognito.StandardThreatProtectionMode.FULL_FUNCTION,
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        for group in ROLE_GROUPS:
            cognito.CfnUserPoolGroup(
                self,
                f"Group-{group}",
                user_pool_id=self.user_pool.user_pool_id,
                group_name=group,
                description=f"PoC Dojo role {group} (cognito:groups claim)",
            )
        self.app_client = self.user_pool.add_client(
            "MobileAndWeb",
            generate_secret=False,  # public clients (mobile apps): authorization code + PKCE
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(authorization_code_grant=True),
                scopes=[cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL],
                callback_urls=[
                    "pocdojo://auth/callback",
                    f"https://{topology.API_DOMAIN}/console/callback",
                ],
            ),
            read_attributes=cognito.ClientAttributes()
            .with_standard_attributes(email=True)
            .with_custom_attributes("tenant_id"),
            write_attributes=cognito.ClientAttributes().with_standard_attributes(email=True),
            access_token_validity=Duration.minutes(15),
            id_token_validity=Duration.minutes(15),
            refresh_token_validity=Duration.days(30),
            prevent_user_existence_errors=True,
        )
        CfnOutput(self, "UserPoolId", value=self.user_pool.user_pool_id)
        CfnOutput(self, "OidcIssuer", value=self.user_pool.user_pool_provider_url)
        CfnOutput(self, "AppClientId", value=self.app_client.user_pool_client_id)

    def _waf(self) -> None:
        def visibility(name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
            return wafv2.CfnWebACL.VisibilityConfigProperty(
                cloud_watch_metrics_enabled=True, metric_name=name, sampled_requests_enabled=True
            )

        rules = [
            wafv2.CfnWebACL.RuleProperty(
                name=name,
                priority=priority,
                statement=wafv2.CfnWebACL.StatementProperty(
                    managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                        vendor_name="AWS", name=name
                    )
                ),
                override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                visibility_config=visibility(name),
            )
            for priority, name in enumerate(MANAGED_RULE_GROUPS)
        ]
        rules.append(
            wafv2.CfnWebACL.RuleProperty(
                name="RatePerIp",
                priority=len(rules),
                statement=wafv2.CfnWebACL.StatementProperty(
                    rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                        limit=RATE_LIMIT, aggregate_key_type="IP"
                    )
                ),
                action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                visibility_config=visibility("RatePerIp"),
            )
        )
        self.web_acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            rules=rules,
            visibility_config=visibility("pocdojo"),
        )
        logs_key = kms.Key(
            self, "WafLogKey", enable_key_rotation=True, removal_policy=RemovalPolicy.RETAIN
        )
        from aws_cdk import aws_iam as iam

        logs_key.grant_encrypt_decrypt(
            iam.ServicePrincipal(f"logs.{topology.REGION}.amazonaws.com")
        )
        waf_logs = logs.LogGroup(
            self,
            "WafLogs",
            # WAF only delivers to log groups whose name starts with aws-waf-logs-.
            log_group_name=f"aws-waf-logs-{topology.ENV_NAME}-pocdojo",
            retention=logs.RetentionDays.ONE_YEAR,
            encryption_key=logs_key,
            removal_policy=RemovalPolicy.RETAIN,
        )
        wafv2.CfnLoggingConfiguration(
            self,
            "WafLogging",
            resource_arn=self.web_acl.attr_arn,
            log_destination_configs=[waf_logs.log_group_arn],
        )
        CfnOutput(self, "WebAclArn", value=self.web_acl.attr_arn)

    def _dns(self) -> None:
        zone = route53.HostedZone.from_hosted_zone_attributes(
            self, "Zone", hosted_zone_id=HOSTED_ZONE_ID, zone_name=topology.HOSTED_ZONE_NAME
        )
        self.certificate = acm.Certificate(
            self,
            "ApiCertificate",
            domain_name=topology.API_DOMAIN,
            validation=acm.CertificateValidation.from_dns(zone),
        )
        CfnOutput(self, "CertificateArn", value=self.certificate.certificate_arn)
        # Known only once the Load Balancer Controller has created the ALB from the Ingress:
        # `kubectl get ingress pocdojo -o jsonpath='{.status.loadBalancer.ingress[0].hostname}'`.
        alb_dns = CfnParameter(
            self,
            "IngressAlbDnsName",
            type="String",
            default="",
            allowed_pattern=r"^$|^[a-z0-9.-]+\.elb\.amazonaws\.com$",
            description="DNS name of the ALB of the pocdojo Ingress (empty: no record yet)",
        )
        # First deploy (before the Ingress exists): no record and no health check yet.
        has_alb = CfnCondition(
            self,
            "HasIngressAlb",
            expression=Fn.condition_not(Fn.condition_equals(alb_dns.value_as_string, "")),
        )
        self.health_check = route53.CfnHealthCheck(
            self,
            "ApiHealth",
            health_check_config=route53.CfnHealthCheck.HealthCheckConfigProperty(
                type="HTTPS",
                fully_qualified_domain_name=topology.API_DOMAIN,
                resource_path="/readyz",
                port=443,
                request_interval=10,
                failure_threshold=3,
                enable_sni=True,
            ),
        )
        self.health_check.cfn_options.condition = has_alb
        record = route53.CfnRecordSet(
            self,
            "ApiRecord",
            hosted_zone_id=HOSTED_ZONE_ID,
            name=f"{topology.API_DOMAIN}.",
            type="A",
            alias_target=route53.CfnRecordSet.AliasTargetProperty(
                dns_name=alb_dns.value_as_string,
                hosted_zone_id=topology.ALB_CANONICAL_HOSTED_ZONE_ID,
                evaluate_target_health=True,
            ),
            set_identifier=topology.REGION,
            failover="PRIMARY",
            health_check_id=self.health_check.attr_health_check_id,
        )
        record.cfn_options.condition = has_alb
