"""A process that cannot start says why in one line, naming the setting, with no traceback."""

import pytest

from techbridge_shared.testing.processes import run_to_exit

SERVICES = ["catalog", "matching", "valuation", "vouchers", "gateway"]


def _refusal(module: str, env: dict[str, str]) -> str:
    result = run_to_exit(module, env, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("service", SERVICES)
def test_unreachable_database_is_named(service, tmp_path):
    prefix = service.upper()
    line = _refusal(f"techbridge_{service}", {
        f"{prefix}_DATABASE_URL": "postgresql+asyncpg://techbridge@127.0.0.1:1/nowhere",
        f"{prefix}_DATABASE_STARTUP_TIMEOUT_S": "1",
        f"{prefix}_DATA_DIR": str(tmp_path),
    })
    assert line.startswith(f"{service}: cannot start: database at {prefix}_DATABASE_URL=")
    assert "unreachable" in line


@pytest.mark.parametrize("service", SERVICES)
def test_unknown_setting_is_named(service):
    line = _refusal(f"techbridge_{service}", {f"{service.upper()}_DATABSE_URL": "sqlite+aiosqlite:///x.db"})
    assert line == f"{service}: cannot start: unknown setting {service.upper()}_DATABSE_URL (not a Settings field)"


def test_malformed_values_are_named(tmp_path):
    assert "invalid setting CATALOG_PORT" in _refusal("techbridge_catalog", {"CATALOG_PORT": "eighty"})
    assert "invalid setting VOUCHERS_DATABASE_URL" in _refusal(
        "techbridge_vouchers", {"VOUCHERS_DATABASE_URL": "mysql://u@h/db", "VOUCHERS_DATA_DIR": str(tmp_path)})
    assert "internal_auth_secret" in _refusal("techbridge_matching", {"MATCHING_ENVIRONMENT": "production"})
