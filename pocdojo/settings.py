"""Typed settings parsed once from ``POCDOJO_*`` environment variables."""

from __future__ import annotations

import functools
from typing import Literal
from urllib.parse import urlparse

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class IceServer(BaseModel):
    """A STUN/TURN server for voice calls, as WebRTC's ``RTCIceServer`` spells it."""

    urls: list[str]
    username: str | None = None
    credential: str | None = None


class Settings(BaseSettings):
    """Every knob of the platform; defaults run everything on one machine."""

    model_config = SettingsConfigDict(env_prefix="POCDOJO_", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    # The service connects as pocdojo_app (not owner, no BYPASSRLS); migrations as the owner.
    database_url: str = "postgresql://pocdojo_app@127.0.0.1:5432/pocdojo"
    owner_database_url: str = "postgresql://pocdojo_owner@127.0.0.1:5432/pocdojo"
    # The outbox relay's role: reads every tenant's events through a policy of its own.
    relay_database_url: str = "postgresql://pocdojo_relay@127.0.0.1:5432/pocdojo"
    events_stream: str = "pocdojo:events"
    """Platform event stream (entries carry tenant_id); not tenant data, so not t:<id>:."""
    # The search service's own role: reads and writes only the search schema.
    search_database_url: str = "postgresql://pocdojo_search@127.0.0.1:5432/pocdojo"
    search_backend: Literal["postgres", "opensearch"] = "postgres"
    opensearch_url: str | None = None
    # Superuser connection used only by `pocdojo db bootstrap` to create roles and databases.
    admin_database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    db_pool_min: int = 1
    db_pool_max: int = 10
    db_command_timeout_s: float = 5.0
    redis_url: str = "redis://127.0.0.1:6379/0"

    blob_url: str = "file://./var/blobs"
    """``file:///abs/path`` or ``s3://bucket/prefix``."""
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    blob_signing_key: str = "dev-only-blob-signing-key-change-me"
    upload_url_ttl_s: int = 900
    download_url_ttl_s: int = 3600
    max_media_bytes: int = 50 * 1024 * 1024
    report_export_stale_s: int = 30
    """An export job whose heartbeat is older than this is re-launched by the sweeper."""
    report_sweep_interval_s: float = 5.0

    public_base_url: str = "http://127.0.0.1:8000"

    oidc_issuer: str = "http://127.0.0.1:8000/auth"
    oidc_audience: str = "pocdojo"
    oidc_jwks_url: str | None = None
    """Defaults to discovery through ``{issuer}/.well-known/openid-configuration``."""
    oidc_leeway_s: int = 30
    oidc_jwks_cache_s: int = 600
    claim_user_id: str = "sub"
    claim_tenant_id: str = "custom:tenant_id"
    claim_roles: str = "cognito:groups"
    claim_email: str = "email"

    dev_issuer_enabled: bool = True
    dev_issuer_key_path: str = "./var/dev-issuer-key.pem"
    dev_token_ttl_s: int = 3600

    serve_host: str = "127.0.0.1"
    serve_port: int = 8000
    # The dojo gateway's own websocket listener (a `websockets` server in each DojoGateway
    # replica, SO_REUSEPORT): /v1/dojos/{id}/sync and /events without Serve's HTTP proxy.
    dojo_gateway_host: str = "127.0.0.1"
    dojo_gateway_port: int = 8001
    dojo_idle_s: float = 60.0
    # Where a dojo's session runs: "gateway" = in the gateway process that owns the dojo
    # (Redis lease; other processes pipe their sockets to it), "actor" = one Ray actor per
    # dojo. `make bench-dojo` measures both.
    dojo_session_host: Literal["gateway", "actor"] = "gateway"
    dojo_owner_lease_s: float = 10.0
    # The address other gateway processes reach this one's internal listener on (the pod
    # IP in the cluster); the port is picked at start.
    dojo_gateway_internal_host: str = "127.0.0.1"
    """A session actor stops this long after its last participant left (state stored first)."""
    ray_address: str = "127.0.0.1:6380"
    """GCS address of the local head (6379 is Redis's port)."""
    ray_dashboard_port: int = 8265
    ray_port_base: int = 0
    """Offset for the local cluster's other fixed ports (agent, client server, HAProxy
    stats/metrics, ingress range), so a second cluster (the end-to-end tests') fits."""
    ray_temp_dir: str | None = None
    serve_config_path: str = "cluster/kuberay/serve-config.yaml"
    request_timeout_s: float = 10.0

    # Yearly videos (video-api): rendering runs as Ray tasks, segments side by side.
    video_runner_enabled: bool = True
    video_executor: Literal["auto", "ray", "local"] = "auto"
    """auto: Ray tasks when this process is connected to Ray, else a local process pool."""
    video_workers: int = 2
    """Segments of one render in flight at once."""
    video_segment_timeout_s: float = 120.0
    video_max_attempts: int = 3
    video_lease_s: float = 30.0
    video_poll_s: float = 2.0
    video_scale: int = 1
    """Divides the 1280x720 / 720x1280 frame size (tests render small films)."""
    video_intro_s: float = 3.0
    video_poc_s: float = 4.0
    video_outro_s: float = 5.0

    log_level: str = Field(default="INFO")

    ice_servers: list[IceServer] = Field(default_factory=list)
    """Voice calls' STUN/TURN servers, a JSON list (``POCDOJO_ICE_SERVERS='[{"urls":
    ["turn:turn.example.com:3478"], "username": "u", "credential": "p"}]'``); empty means
    host candidates only, enough on one machine or one network."""
    voice_max_participants: int = 16
    voice_silence_timeout_s: float = 10.0
    """A call participant who sends no audio packet for this long is removed."""

    @field_validator("blob_url")
    @classmethod
    def _check_blob_url(cls, value: str) -> str:
        scheme = urlparse(value).scheme
        if scheme not in {"file", "s3"}:
            raise ValueError("POCDOJO_BLOB_URL must start with file:// or s3://")
        return value

    @property
    def is_production(self) -> bool:
        return self.env == "production"


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, parsed once."""
    return Settings()
