from pydantic_settings import SettingsConfigDict

from techbridge_shared.service import Settings as BaseSettings


class Settings(BaseSettings):
    """Matching settings; every field can be set as MATCHING_<FIELD> in the environment."""

    model_config = SettingsConfigDict(env_prefix="MATCHING_", extra="forbid", frozen=True)

    port: int = 8102
