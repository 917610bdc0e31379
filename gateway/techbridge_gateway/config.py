from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from techbridge_shared.service import Settings as BaseSettings
from techbridge_shared.settings import DEV_SECRET_PREFIX


class Settings(BaseSettings):
    """Gateway settings; every field can be set as GATEWAY_<FIELD> in the environment."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="forbid", frozen=True)

    port: int = 8000

    # --- upstreams ------------------------------------------------------------------------
    catalog_url: str = "http://127.0.0.1:8101"
    matching_url: str = "http://127.0.0.1:8102"
    valuation_url: str = "http://127.0.0.1:8103"
    vouchers_url: str = "http://127.0.0.1:8104"
    upstream_connect_timeout_s: float = Field(default=2.0, gt=0, le=60)
    upstream_timeout_s: float = Field(default=30.0, gt=0, le=600, description="Read/write timeout per upstream call")
    upstream_max_connections: int = Field(default=200, ge=1, le=10_000)
    upstream_max_keepalive: int = Field(default=50, ge=0, le=10_000,
                                        description="Idle connections kept per service for the OpenAPI fetches (at most 4)")
    # Below the services' own idle timeout (uvicorn closes after 5 s), so the gateway never sends
    # a POST on a connection the service is closing at that moment (GETs would be retried).
    upstream_keepalive_s: float = Field(default=4.0, gt=0, le=3600,
                                        description="How long an idle proxy connection to a service is kept")

    # --- tokens ---------------------------------------------------------------------------
    jwt_secret: str = Field(
        default=DEV_SECRET_PREFIX + "gateway-jwt-signing-key-0123456789",
        description="HS256 signing key for access tokens (at least 32 bytes)",
        min_length=32,
    )
    jwt_issuer: str = "https://techbridge.example/gateway"
    jwt_audience: str = "techbridge-api"
    token_ttl_s: int = Field(default=900, ge=30, le=86_400)
    token_leeway_s: int = Field(default=10, ge=0, le=300)
    secret_rotation_grace_s: int = Field(
        default=3600, ge=0, le=30 * 86_400, description="How long a rotated client secret keeps working"
    )
    token_generations_refresh_s: float = Field(
        default=2.0, gt=0, le=300,
        description="How often each replica reads which clients and users were disabled or rotated elsewhere",
    )
    login_max_failures: int = Field(default=5, ge=1, le=100)
    login_lockout_s: int = Field(default=900, ge=1, le=86_400)
    # argon2id cost; the defaults follow RFC 9106's second recommended option scaled down.
    password_time_cost: int = Field(default=2, ge=1, le=10)
    password_memory_kib: int = Field(default=19_456, ge=8, le=1_048_576)

    # --- accounts that exist without an admin creating them ------------------------------
    bootstrap_admin_client_id: str = Field(default="", description="An admin client created at start-up (empty: none)")
    bootstrap_admin_secret: str = ""
    dev_clients: bool = Field(default=True, description="In environment=dev, create dev-<role> clients")
    dev_clients_file: str = Field(default="", description="Where dev client secrets go; empty: <data_dir>/dev-clients.json")

    # --- limits ---------------------------------------------------------------------------
    rate_limit_per_s: float = Field(default=100.0, gt=0, description="Sustained requests per second per client")
    rate_limit_burst: int = Field(default=200, ge=1, description="Token bucket size per client")
    anonymous_rate_limit_per_s: float = Field(default=20.0, gt=0, description="Per remote address, for /auth/token")
    anonymous_rate_limit_burst: int = Field(default=40, ge=1)
    max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    max_query_length: int = Field(default=4096, ge=64)
    max_page_size: int = Field(default=100, ge=1, le=1000)

    # --- merged OpenAPI -------------------------------------------------------------------
    openapi_refresh_s: float = Field(default=60.0, gt=0)
    public_url: str = Field(default="", description="Base URL shown in the merged OpenAPI (empty: relative)")

    # --- event subscriptions --------------------------------------------------------------
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=120)
    webhook_max_attempts: int = Field(default=8, ge=1, le=50, description="Failures before a delivery is parked")
    webhook_backoff_base_s: float = Field(default=2.0, gt=0, le=3600)
    webhook_backoff_max_s: float = Field(default=3600.0, gt=0)
    webhook_concurrency: int = Field(default=32, ge=1, le=1000)
    webhook_poll_interval_s: float = Field(default=0.5, gt=0, le=60)
    webhook_allow_private_targets: bool = Field(
        default=False, description="Allow callbacks to private addresses (never in production)"
    )
    event_retention_days: int = Field(default=30, ge=1, le=3650, description="How long events stay replayable")
    events_consumer_group: str = "gateway.subscriptions"
    stream_poll_interval_s: float = Field(default=1.0, gt=0, le=60)
    stream_heartbeat_s: float = Field(default=15.0, gt=0, le=300)

    @model_validator(mode="after")
    def _safe_outside_dev(self):
        if self.environment == "production" and self.webhook_allow_private_targets:
            raise ValueError("webhook_allow_private_targets: never allowed in production")
        if bool(self.bootstrap_admin_client_id) != bool(self.bootstrap_admin_secret):
            raise ValueError("bootstrap_admin_secret: give both the bootstrap admin client id and its secret, or neither")
        if self.bootstrap_admin_secret and len(self.bootstrap_admin_secret) < 24:
            raise ValueError("bootstrap_admin_secret: must be at least 24 characters")
        return self

    def upstreams(self) -> dict[str, str]:
        return {
            "catalog": self.catalog_url.rstrip("/"),
            "matching": self.matching_url.rstrip("/"),
            "valuation": self.valuation_url.rstrip("/"),
            "vouchers": self.vouchers_url.rstrip("/"),
        }

    @property
    def is_dev(self) -> bool:
        return self.environment == "dev"
