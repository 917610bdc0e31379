"""Settings shared by every process, composed into each service's own Settings class.

A service declares `class Settings(ServiceSettings, DatabaseSettings, KafkaSettings)` with
`env_prefix="CATALOG_"`, so `CATALOG_DATABASE_URL` and `CATALOG_KAFKA_BOOTSTRAP_SERVERS` set
its store and broker. `load_settings` turns every mistake into one line naming the setting.
"""

from __future__ import annotations

import os
from typing import Literal, TypeVar

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET_PREFIX = "dev-only-"


class ConfigurationError(Exception):
    """A setting is missing, malformed or unusable; the message names it in one line."""


class BaseServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="forbid", frozen=True)


class DatabaseSettings(BaseServiceSettings):
    database_url: str = Field(
        default="",
        description="SQLAlchemy async URL, e.g. sqlite+aiosqlite:///.data/catalog.db or "
        "postgresql+asyncpg://user@host/techbridge_catalog. Empty: SQLite under data_dir.",
    )
    database_echo: bool = False
    database_pool_size: int = Field(default=10, ge=1, le=200)


class KafkaSettings(BaseServiceSettings):
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_client_id: str = ""
    # Partitions for the topics a service creates at start-up (aggregate id is the key).
    kafka_topic_partitions: int = Field(default=3, ge=1, le=1000)
    kafka_topic_replication_factor: int = Field(default=1, ge=1, le=5)
    kafka_request_timeout_ms: int = Field(default=10_000, ge=1000)


class ServiceSettings(BaseServiceSettings):
    environment: Literal["dev", "test", "production"] = "dev"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    data_dir: str = ".data"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Publishing can run in a separate process (or be paused by an operator) without
    # stopping writes: events wait in the outbox.
    outbox_relay_enabled: bool = True
    outbox_poll_interval_ms: int = Field(default=100, ge=5, le=60_000)
    outbox_batch_size: int = Field(default=200, ge=1, le=5000)
    consumer_max_attempts: int = Field(default=5, ge=1, le=100)
    consumer_retry_backoff_ms: int = Field(default=200, ge=0, le=60_000)
    internal_auth_secret: str = Field(
        default=DEV_SECRET_PREFIX + "internal-auth-secret",
        description="Shared by the gateway and the services to sign and verify forwarded identities",
    )
    internal_auth_previous_secrets: str = Field(
        default="",
        description="Comma-separated earlier internal auth secrets that services still accept during a "
        "rotation (the gateway always signs with internal_auth_secret)",
    )
    database_startup_timeout_s: float = Field(
        default=10.0, ge=0, le=600, description="How long to wait for the store at start-up"
    )

    @model_validator(mode="after")
    def _no_dev_secrets_outside_dev(self):
        # Secrets default to values starting with DEV_SECRET_PREFIX so `make run` works; a
        # production process must be given real ones.
        if self.environment == "production":
            for name, value in self:
                if isinstance(value, str) and value.startswith(DEV_SECRET_PREFIX):
                    raise ValueError(f"{name}: the development default must be replaced in production")
        return self


S = TypeVar("S", bound=BaseSettings)


def _unknown_env_settings(cls: type[BaseSettings]) -> list[str]:
    """Environment variables with the service's prefix that match no field: typos, usually."""
    prefix = (cls.model_config.get("env_prefix") or "").upper()
    if not prefix:
        return []
    known = {prefix + name.upper() for name in cls.model_fields}
    return sorted(k for k in os.environ if k.upper().startswith(prefix) and k.upper() not in known)


def load_settings(cls: type[S], **overrides) -> S:
    """Build settings from the environment, or raise ConfigurationError with one line."""
    prefix = (cls.model_config.get("env_prefix") or "").upper()
    unknown = _unknown_env_settings(cls)
    if unknown:
        raise ConfigurationError(f"unknown setting {unknown[0]} (not a {cls.__name__} field)")
    try:
        return cls(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "settings"
        name = prefix + field.upper() if field in cls.model_fields else field
        raise ConfigurationError(f"invalid setting {name}: {err['msg']}") from None
