"""Migration 0004 on SQLite and PostgreSQL: a programme stored before it keeps working with no
owner (every official governs it, as before), a new one stores its owner and reviewers, and the
revision goes down and up again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import insert

from techbridge_shared.db import Database
from techbridge_shared.migrations import alembic_config

from techbridge_vouchers.domain import model as m
from techbridge_vouchers.main import MIGRATIONS_DIR
from techbridge_vouchers.store.repository import GENESIS, Repository
from techbridge_vouchers.store.tables import programmes

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _migrate(rev: str, *, down: bool = False):
    cfg = alembic_config(MIGRATIONS_DIR)

    def go(conn):
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, rev)
    return go


def _row(pid: str) -> dict:
    """A programme row as revision 0003 stores it (no owner columns)."""
    return dict(id=pid, name="before owners", description="", currency="CNY", state="open", face_values=[100],
                max_share_bp=5000, annual_quota=100, categories=["testing"], eligibility={},
                applications_open_at=T0, applications_close_at=T0 + timedelta(days=30), validity_days=30,
                unspent_policy="lapse", reminder_days=1, review_levels=2, created_by="officer-0", created_at=T0,
                closed_at=None, head_hash=GENESIS)


async def _programme(db: Database, pid: str) -> m.Programme:
    async with db.sessionmaker() as s:
        return await Repository(s).programme(pid)


async def test_0004_keeps_programmes_stored_before_it_governed_by_every_official(store_url):
    db = Database(store_url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(_migrate("0003"))
        async with db.engine.begin() as conn:
            await conn.execute(insert(programmes).values(**_row("legacy")))
        async with db.engine.begin() as conn:
            await conn.run_sync(_migrate("head"))

        legacy = await _programme(db, "legacy")
        assert legacy.owner_org_id is None and legacy.reviewer_org_ids == ()
        m.authorise_governing(legacy, org="gov-anywhere", admin=False, action=m.Governing.MANAGE)

        async with db.engine.begin() as conn:
            await conn.execute(insert(programmes).values(**_row("owned"), owner_org_id="gov-1",
                                                         reviewer_org_ids=["gov-district"]))
        owned = await _programme(db, "owned")
        assert (owned.owner_org_id, owned.reviewer_org_ids) == ("gov-1", ("gov-district",))
        with pytest.raises(m.Forbidden):
            m.authorise_governing(owned, org="gov-anywhere", admin=False, action=m.Governing.MANAGE)
        m.authorise_governing(owned, org="gov-district", admin=False, action=m.Governing.REVIEW, review_level=1)

        async with db.engine.begin() as conn:
            await conn.run_sync(_migrate("0003", down=True))
        async with db.engine.begin() as conn:
            await conn.run_sync(_migrate("head"))
        assert (await _programme(db, "owned")).owner_org_id is None  # down dropped the columns, up re-added them
    finally:
        await db.engine.dispose()
