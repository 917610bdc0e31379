from pydantic import Field
from pydantic_settings import SettingsConfigDict

from techbridge_shared.service import Settings as BaseSettings


class Settings(BaseSettings):
    """Valuation settings; every field can be set as VALUATION_<FIELD> in the environment."""

    model_config = SettingsConfigDict(env_prefix="VALUATION_", extra="forbid", frozen=True)

    port: int = 8103
    consumer_group_prefix: str = Field(
        default="valuation", description="Consumer groups are <prefix>.achievements and <prefix>.transfers")
    default_paths: int = Field(default=10_000, ge=1_000, le=200_000,
                               description="Monte Carlo paths when a request does not say")
    pdf_font_path: str = Field(
        default="", description="TrueType font embedded in PDF reports; give one with CJK glyphs (e.g. "
        "NotoSansCJK) to print Chinese titles. Empty: DejaVu Sans if installed, else the core font")
