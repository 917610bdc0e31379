import pytest
from pydantic_settings import SettingsConfigDict

from techbridge_shared.service import Settings
from techbridge_shared.settings import ConfigurationError, load_settings


class DemoSettings(Settings):
    model_config = SettingsConfigDict(env_prefix="DEMO_", extra="forbid", frozen=True)


def test_defaults_work_locally(monkeypatch):
    s = load_settings(DemoSettings)
    assert s.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert s.environment == "dev"


def test_environment_overrides(monkeypatch):
    monkeypatch.setenv("DEMO_DATABASE_URL", "postgresql+asyncpg://u@h/db")
    monkeypatch.setenv("DEMO_PORT", "9999")
    s = load_settings(DemoSettings)
    assert (s.database_url, s.port) == ("postgresql+asyncpg://u@h/db", 9999)


def test_unknown_setting_is_named(monkeypatch):
    monkeypatch.setenv("DEMO_DATABSE_URL", "x")
    with pytest.raises(ConfigurationError, match="unknown setting DEMO_DATABSE_URL"):
        load_settings(DemoSettings)


def test_invalid_value_is_named(monkeypatch):
    monkeypatch.setenv("DEMO_PORT", "eighty")
    with pytest.raises(ConfigurationError, match="invalid setting DEMO_PORT"):
        load_settings(DemoSettings)


def test_development_secrets_are_refused_in_production(monkeypatch):
    monkeypatch.setenv("DEMO_ENVIRONMENT", "production")
    with pytest.raises(ConfigurationError, match="internal_auth_secret"):
        load_settings(DemoSettings)
    monkeypatch.setenv("DEMO_INTERNAL_AUTH_SECRET", "a-real-secret-from-the-vault")
    assert load_settings(DemoSettings).environment == "production"
