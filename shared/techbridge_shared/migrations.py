"""Alembic, driven from code: every service migrates its own store on start-up.

A service's `migrations/env.py` is just `run_env(metadata)`. On PostgreSQL an advisory lock
keeps two replicas starting together from migrating at once.
"""

from __future__ import annotations

import importlib.util
import zlib
from pathlib import Path
from types import ModuleType

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, text

from .db import Database


def alembic_config(migrations_dir: Path) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    return cfg


def sibling_revision(this_file: str, filename: str) -> ModuleType:
    """The migration module `filename` beside `this_file` (a revision whose way down restores
    what an earlier one created takes that revision's definitions instead of copying them)."""
    path = Path(this_file).with_name(filename)
    spec = importlib.util.spec_from_file_location(f"migration_{path.parent.parent.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def migration_step(migrations_dir: Path, revision: str, *, down: bool = False):
    """A function for `AsyncConnection.run_sync` that moves the store up (or `down`) to
    `revision` (tests of a migration's way down and back up)."""
    cfg = alembic_config(migrations_dir)

    def step(connection) -> None:
        cfg.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(cfg, revision)

    return step


async def upgrade_to_head(db: Database, migrations_dir: Path, service: str) -> None:
    cfg = alembic_config(migrations_dir)

    def _upgrade(connection):
        if connection.dialect.name == "postgresql":
            lock_id = zlib.crc32(f"techbridge-migrate-{service}".encode())
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")

    async with db.engine.begin() as conn:
        await conn.run_sync(_upgrade)


def run_env(target_metadata: MetaData) -> None:
    """Body of a service's migrations/env.py (online mode, on the connection given above)."""
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("migrations run on service start-up (or via upgrade_to_head), not the alembic CLI")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
