from pydantic import Field
from pydantic_settings import SettingsConfigDict

from techbridge_shared.service import Settings as BaseSettings


class Settings(BaseSettings):
    """Catalog settings; every field can be set as CATALOG_<FIELD> in the environment."""

    model_config = SettingsConfigDict(env_prefix="CATALOG_", extra="forbid", frozen=True)

    port: int = 8101
    listing_ttl_days: int = Field(default=365, ge=1, le=3650, description="How long a publication lasts unless renewed")
    expiry_sweep_interval_s: float = Field(default=60.0, ge=0.05, le=86_400, description="How often due listings are expired")
    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="Largest request body (bulk import excepted)")
    max_import_bytes: int = Field(default=33_554_432, ge=1024, description="Largest bulk import body")
    facet_cache_s: float = Field(default=0.0, ge=0, le=3600, description="How long facet counts are reused (0: never, exact)")
    consumer_group_prefix: str = Field(default="catalog", description="Consumer groups are <prefix>.<purpose>")
