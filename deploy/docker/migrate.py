"""Apply one service's migrations and exit: the step that runs before its replicas start.

    python /app/migrate.py [service]        (default: $TECHBRIDGE_SERVICE, set by each image)

It reads the service's own settings (e.g. CATALOG_DATABASE_URL), waits for the database for
<SERVICE>_DATABASE_STARTUP_TIMEOUT_S, upgrades to head under the same advisory lock the service
takes on start-up, prints the revision it reached and exits 0. A configuration problem or an
unreachable database exits 2 with one line, like the service itself. The Kubernetes migration
Jobs and the compose file's `<service>-migrate` containers run it; a service that starts
afterwards finds its store at head and migrates nothing.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys

from sqlalchemy import text

from techbridge_shared.db import Database, wait_for_database
from techbridge_shared.migrations import upgrade_to_head
from techbridge_shared.settings import ConfigurationError


async def migrate(service: str) -> str:
    build_spec = importlib.import_module(f"techbridge_{service}.main").build_spec
    spec = build_spec()
    db = Database.from_settings(spec.settings, spec.name)
    try:
        await wait_for_database(
            db, spec.env_prefix + "DATABASE_URL", spec.settings.database_startup_timeout_s
        )
        await upgrade_to_head(db, spec.migrations_dir, spec.name)
        async with db.engine.connect() as conn:
            return (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
    finally:
        await db.dispose()


def main(argv: list[str]) -> int:
    service = argv[1] if len(argv) > 1 else os.environ.get("TECHBRIDGE_SERVICE", "")
    if not service:
        print("migrate: name the service (argument or TECHBRIDGE_SERVICE)", file=sys.stderr)
        return 2
    try:
        revision = asyncio.run(migrate(service))
    except ConfigurationError as exc:
        print(f"{service}: cannot migrate: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        if exc.name not in (f"techbridge_{service}", f"techbridge_{service}.main"):
            raise
        print(f"{service}: cannot migrate: no such service ({exc.name})", file=sys.stderr)
        return 2
    print(f"{service}: database at revision {revision}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
