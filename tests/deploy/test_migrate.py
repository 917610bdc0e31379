"""The one-shot migration step (deploy/docker/migrate.py) and the compose PostgreSQL init script.

Both run for real here: migrate.py's `main` in-process with only the service's settings in its
environment (test_image_build.py runs it as the images do, in a separate interpreter), on
SQLite and on the PostgreSQL server `make test` starts, where the init script creates the
per-service roles and databases exactly as in the compose stack.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import subprocess
import sys
import uuid

import pytest

from deploy_support import DEPLOY, env_prefix, environment, processes

MIGRATE = DEPLOY / "docker" / "migrate.py"
INIT_SCRIPT = DEPLOY / "compose" / "postgres-init" / "10-databases.sh"


def head_revision(name: str) -> str:
    from alembic.script import ScriptDirectory

    from techbridge_shared.migrations import alembic_config

    return ScriptDirectory.from_config(alembic_config(processes()[name] / "migrations")).get_current_head()


def load_migrate():
    spec = importlib.util.spec_from_file_location("techbridge_deploy_migrate", MIGRATE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def migrate_in_process(env: dict[str, str], *args: str, capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    saved = os.environ.pop("TECHBRIDGE_SERVICE", None)
    try:
        with environment(env):
            code = load_migrate().main(["migrate.py", *args])
    finally:
        os.environ.pop("TECHBRIDGE_SERVICE", None)
        if saved is not None:
            os.environ["TECHBRIDGE_SERVICE"] = saved
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("name", sorted(processes()))
def test_migrate_brings_the_store_to_head_and_is_idempotent(tmp_path, name, capsys):
    env = {env_prefix(name) + "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"}
    first = migrate_in_process(env, name, capsys=capsys)
    assert first[0] == 0, first[2]
    assert first[1].strip() == f"{name}: database at revision {head_revision(name)}"
    second = migrate_in_process(env, name, capsys=capsys)
    assert second == first


def test_migrate_refuses_in_one_line(tmp_path, capsys):
    code, _, err = migrate_in_process({"CATALOG_ENVIRONMENT": "production"}, "catalog", capsys=capsys)
    assert code == 2 and err.strip().count("\n") == 0
    assert "development default must be replaced in production" in err
    code, _, err = migrate_in_process(
        {"VOUCHERS_DATABASE_URL": "postgresql+asyncpg://nobody@127.0.0.1:1/none",
         "VOUCHERS_DATABASE_STARTUP_TIMEOUT_S": "0"},
        "vouchers", capsys=capsys,
    )
    assert code == 2 and err.strip().count("\n") == 0
    assert "VOUCHERS_DATABASE_URL" in err and "unreachable" in err
    code, _, err = migrate_in_process({}, "nosuchservice", capsys=capsys)
    assert code == 2 and "no such service" in err
    assert migrate_in_process({}, capsys=capsys)[0] == 2


def psql_available() -> bool:
    return shutil.which("psql") is not None


async def _connect(url: str):
    import asyncpg

    return await asyncpg.connect(url)


def can_connect(url: str) -> bool:
    import asyncpg

    async def attempt() -> bool:
        try:
            conn = await _connect(url)
        except asyncpg.InsufficientPrivilegeError:
            return False
        await conn.close()
        return True

    return asyncio.run(attempt())


@pytest.mark.postgres
@pytest.mark.skipif(not psql_available(), reason="needs psql (installed with PostgreSQL by make test)")
def test_init_script_gives_each_service_its_own_database_and_role(tmp_path, capsys):
    server = os.environ.get("TECHBRIDGE_TEST_PG_URL")
    if not server:
        pytest.fail("TECHBRIDGE_TEST_PG_URL is not set: run tests with `make test`")
    from sqlalchemy.engine import make_url

    url = make_url(server)
    suffix = "_t" + uuid.uuid4().hex[:8]
    names = sorted(processes())
    passwords = {n: uuid.uuid4().hex for n in names}
    env = {
        **os.environ,
        "PGHOST": url.host or "127.0.0.1",
        "PGPORT": str(url.port or 5432),
        "POSTGRES_USER": url.username or "postgres",
        "TECHBRIDGE_DB_SUFFIX": suffix,
        **{f"{n.upper()}_DB_PASSWORD": p for n, p in passwords.items()},
    }
    if url.password:
        env["PGPASSWORD"] = url.password
    admin = server.replace("postgresql+asyncpg://", "postgresql://").rstrip("/") + "/postgres"
    try:
        created = subprocess.run(["sh", str(INIT_SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
        assert created.returncode == 0, created.stderr
        host = f"{url.host or '127.0.0.1'}:{url.port or 5432}"
        for name in names:
            service_url = f"postgresql+asyncpg://{name}{suffix}:{passwords[name]}@{host}/techbridge_{name}{suffix}"
            code, out, err = migrate_in_process({env_prefix(name) + "DATABASE_URL": service_url}, name, capsys=capsys)
            assert code == 0, err
            assert out.strip().endswith(head_revision(name))
        # One service's role cannot open another service's database.
        other = f"postgresql://{names[1]}{suffix}:{passwords[names[1]]}@{host}/techbridge_{names[0]}{suffix}"
        own = f"postgresql://{names[0]}{suffix}:{passwords[names[0]]}@{host}/techbridge_{names[0]}{suffix}"
        assert can_connect(own)
        assert not can_connect(other)
    finally:
        async def drop():
            conn = await _connect(admin)
            try:
                for name in names:
                    await conn.execute(f'DROP DATABASE IF EXISTS "techbridge_{name}{suffix}" WITH (FORCE)')
                    await conn.execute(f'DROP ROLE IF EXISTS "{name}{suffix}"')
            finally:
                await conn.close()

        asyncio.run(drop())
