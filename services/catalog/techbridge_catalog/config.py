from pydantic_settings import SettingsConfigDict

from techbridge_shared.service import Settings as BaseSettings


class Settings(BaseSettings):
    """Catalog settings; every field can be set as CATALOG_<FIELD> in the environment."""

    model_config = SettingsConfigDict(env_prefix="CATALOG_", extra="forbid", frozen=True)

    port: int = 8101
