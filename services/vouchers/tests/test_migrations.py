"""Migration 0004 on SQLite and PostgreSQL: a programme stored before it keeps working with no
owner (every official governs it, as before), a new one stores its owner and reviewers, and the
revision goes down and up again."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from techbridge_shared.db import Database
from techbridge_shared.migrations import migration_step

from techbridge_vouchers.domain import model as m
from techbridge_vouchers.main import MIGRATIONS_DIR
from techbridge_vouchers.store.repository import GENESIS, Repository
from techbridge_vouchers.store.tables import programmes

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 1, 1, tzinfo=UTC)


_migrate = functools.partial(migration_step, MIGRATIONS_DIR)


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


def _indexes(conn) -> dict[str, set[str]]:
    from sqlalchemy import inspect
    insp = inspect(conn)
    found = {t: {ix["name"] for ix in insp.get_indexes(t)} for t in ("redemptions", "journal")}
    found["tables"] = {"account_credits"} & set(insp.get_table_names())  # 0006
    return found


async def test_0005_trims_the_redemption_indexes_and_goes_down_and_up_again(store_url):
    from sqlalchemy import text
    db = Database(store_url)
    pg = db.engine.dialect.name == "postgresql"

    async def functions() -> set[str]:
        async with db.engine.connect() as conn:
            rows = await conn.execute(text(
                "SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.proname IN "
                "('vouchers_reservation_context', 'vouchers_lock_redemption')"))
            return {r[0] for r in rows}

    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(_migrate("head"))
            after = await conn.run_sync(_indexes)
        assert "ix_redemptions_agency_org_id" not in after["redemptions"]
        assert {"ix_redemptions_transfer_id", "ix_redemptions_payout_batch", "ix_redemptions_invoice",
                "ix_redemptions_settled", "ix_redemptions_voucher_id"} <= after["redemptions"]
        assert "ix_redemptions_agency_state" not in after["redemptions"]  # 0007
        assert "ix_journal_chain_key" not in after["journal"] and "ix_journal_redemption_id" not in after["journal"]
        assert "ix_journal_payout_redemption" in after["journal"] and after["tables"] == {"account_credits"}
        if pg:
            assert await functions() == {
                "vouchers_reservation_context(text,text,text,text,text,text,text,boolean)",
                "vouchers_lock_redemption(text,text,text,boolean)"}

        async with db.engine.begin() as conn:
            await conn.run_sync(_migrate("0004", down=True))
            before = await conn.run_sync(_indexes)
        assert {"ix_redemptions_agency_org_id", "ix_redemptions_transfer_id",
                "ix_redemptions_agency_state"} <= before["redemptions"]
        assert "ix_redemptions_settled" not in before["redemptions"]
        assert {"ix_journal_chain_key", "ix_journal_redemption_id"} <= before["journal"]
        assert before["tables"] == set()
        if pg:
            assert await functions() == {"vouchers_reservation_context(text,text,text,text,text,text,text)",
                                         "vouchers_lock_redemption(text,text,text)"}

        async with db.engine.begin() as conn:
            await conn.run_sync(_migrate("head"))
            assert await conn.run_sync(_indexes) == after
    finally:
        await db.engine.dispose()


async def test_payout_lookups_use_the_partial_indexes(pg_url_factory):
    """The queries by batch, by transfer and for payout entries can use the partial indexes
    (their conditions imply the index predicates), so dropping the full indexes cost no scan."""
    from sqlalchemy import text
    db = Database(pg_url_factory("plan"))
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(_migrate("head"))
            await conn.execute(text("SET LOCAL enable_seqscan = off"))
            for sql, index in (
                ("SELECT id FROM redemptions WHERE payout_batch_id = 'b'", "ix_redemptions_payout_batch"),
                ("SELECT id FROM redemptions WHERE transfer_id = 't' AND state = 'reserved'",
                 "ix_redemptions_transfer_id"),
                ("SELECT id, hash FROM journal WHERE kind = 'payout' AND redemption_id IN ('a', 'b')",
                 "ix_journal_payout_redemption"),
                ("SELECT id FROM redemptions WHERE agency_org_id = 'a' AND state = 'settled' "
                 "ORDER BY settled_at, id", "ix_redemptions_settled"),
                # Not the settled index (it cannot answer it): the invoice's own.
                ("SELECT amount FROM redemptions WHERE agency_org_id = 'a' AND invoice_ref = 'i' "
                 "AND state <> 'voided'", "ix_redemptions_invoice")):
                plan = "\n".join(r[0] for r in await conn.execute(text("EXPLAIN " + sql)))
                assert index in plan, plan
    finally:
        await db.engine.dispose()


async def test_0006_down_folds_the_sub_balances_into_the_account_rows(pg_url_factory):
    from sqlalchemy import text
    db = Database(pg_url_factory("fold"))
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(_migrate("head"))
            await conn.execute(text("INSERT INTO accounts (id, kind, programme_id, owner_id, currency, balance) "
                                    "VALUES ('agency:p:a:payable', 'payable', 'p', 'a', 'CNY', 5)"))
            await conn.execute(text("INSERT INTO account_credits (account_id, shard, amount) "
                                    "VALUES ('agency:p:a:payable', 3, 7), ('agency:p:a:payable', 11, 9)"))
        async with db.engine.begin() as conn:
            await conn.run_sync(_migrate("0005", down=True))
            balance = (await conn.execute(text("SELECT balance FROM accounts WHERE id = 'agency:p:a:payable'"))).scalar()
        assert balance == 21
    finally:
        await db.engine.dispose()
