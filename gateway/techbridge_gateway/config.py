from pydantic_settings import SettingsConfigDict

from techbridge_shared.service import Settings as BaseSettings


class Settings(BaseSettings):
    """Gateway settings; every field can be set as GATEWAY_<FIELD> in the environment."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="forbid", frozen=True)

    port: int = 8000
