from pydantic_settings import SettingsConfigDict

from techbridge_shared.service import Settings as BaseSettings


class Settings(BaseSettings):
    """Vouchers settings; every field can be set as VOUCHERS_<FIELD> in the environment."""

    model_config = SettingsConfigDict(env_prefix="VOUCHERS_", extra="forbid", frozen=True)

    port: int = 8104
