from pydantic import Field
from pydantic_settings import SettingsConfigDict

from techbridge_shared.service import Settings as BaseSettings


class Settings(BaseSettings):
    """Vouchers settings; every field can be set as VOUCHERS_<FIELD> in the environment."""

    model_config = SettingsConfigDict(env_prefix="VOUCHERS_", extra="forbid", frozen=True)

    port: int = 8104
    expiry_sweep_interval_s: float = Field(
        default=300.0, ge=0, description="How often vouchers past validity expire and reminders go out; 0 disables")
    ledger_check_interval_s: float = Field(
        default=300.0, ge=0, description="How often the whole-ledger check runs for monitoring; 0 disables")
    consumer_group_prefix: str = Field(
        default="vouchers", description="Prefix of this service's Kafka consumer groups")
