from pydantic_settings import SettingsConfigDict

from techbridge_shared.service import Settings as BaseSettings


class Settings(BaseSettings):
    """Valuation settings; every field can be set as VALUATION_<FIELD> in the environment."""

    model_config = SettingsConfigDict(env_prefix="VALUATION_", extra="forbid", frozen=True)

    port: int = 8103
