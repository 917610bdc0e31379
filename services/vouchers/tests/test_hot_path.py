"""The PostgreSQL hot path (reserve, settle, void, pay out through `store.hot`): the REST
endpoints use it, and the database still refuses what the domain should never have let through."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import pytest

from techbridge_shared.errors import Conflict
from techbridge_vouchers.domain.ledger import AccountKind, EntryKind, JournalEntry, voucher_account
from techbridge_vouchers.service_layer.common import now
from techbridge_vouchers.store import hot

pytestmark = pytest.mark.postgres


async def _voucher(api, face: int = 50) -> tuple[str, str, object]:
    p = await api.open_programme()
    await api.register_org("ent-h")
    agency = await api.approved_agency(p["id"], "agency-h")
    v = await api.issued_voucher(p["id"], "ent-h", face)
    return p["id"], v["id"], agency


def _reserve_entry(pid: str, vid: str, amount: int) -> JournalEntry:
    return JournalEntry.transfer(
        source=voucher_account(pid, vid, AccountKind.AVAILABLE), target=voucher_account(pid, vid, AccountKind.RESERVED),
        amount=amount, id=f"e-{amount}", kind=EntryKind.RESERVE, chain_key=vid, programme_id=pid, currency="CNY",
        created_at=now(), created_by="test", voucher_id=vid)


async def _state(api, vid: str) -> tuple:
    v = await api.ok("GET", f"/vouchers/{vid}", api.gov, key=None)
    statement = await api.ok("GET", f"/vouchers/{vid}/statement", api.gov, key=None)
    return v["available"]["amount"], v["reserved"]["amount"], len(statement["items"])


async def test_redemption_endpoints_run_on_the_hot_path(pg_url_factory, api_factory, monkeypatch):
    flushed: list[int] = []
    original = hot.HotRepository.flush

    async def counting(self, events, idempotency, **kw):
        flushed.append(len(events))
        return await original(self, events, idempotency, **kw)

    monkeypatch.setattr(hot.HotRepository, "flush", counting)
    async with api_factory(pg_url_factory("hot")) as api:
        pid, vid, agency = await _voucher(api)
        red = await api.ok("POST", "/redemptions", agency, json=api.redemption_body({"id": vid, "enterprise_org_id":
                                                                                    "ent-h"}, 10, 20), status=201)
        await api.ok("POST", f"/redemptions/{red['id']}/settle", api.gov)
        await api.ok("POST", f"/redemptions/{red['id']}/payout", api.gov, json={"reference": "B-1"})
        other = await api.ok("POST", "/redemptions", agency, json=api.redemption_body(
            {"id": vid, "enterprise_org_id": "ent-h"}, 5, 20), status=201)
        await api.ok("POST", f"/redemptions/{other['id']}/void", agency, json={"reason": "cancelled"})
        assert flushed == [1, 1, 1, 1, 1]  # five commands, one event each, each written in one call
        assert await _state(api, vid) == (40, 0, 5)  # issue, reserve, settle, reserve, void
        check = await api.check()
        assert check["ok"], check["problems"]


async def _write_refused(api, tamper, amount: int, expected: type[BaseException]) -> BaseException:
    """Lock a 50-unit voucher on the hot path, let `tamper(conn, vid)` run, post a reservation of
    `amount`, and expect the write to be refused; then nothing may have changed."""
    pid, vid, _ = await _voucher(api, 50)
    before = await _state(api, vid)
    pool = await hot.pool_for(api.runtime.db, 2)
    async with pool.acquire() as conn:
        await conn.execute("BEGIN")
        try:
            repo = hot.HotRepository(conn)
            ctx = await repo.reservation_context(voucher_id=vid, agency_org_id="agency-h", invoice_ref="x",
                                                 transfer_id=None)
            assert ctx.available == 50
            await tamper(conn, vid)
            await repo.post(_reserve_entry(pid, vid, amount))
            with pytest.raises(expected) as refused:
                await repo.flush([], None)
        finally:
            await conn.execute("ROLLBACK")
    assert await _state(api, vid) == before
    check = await api.check()
    assert check["ok"], check["problems"]
    return refused.value


async def test_the_database_refuses_an_overdraft_the_domain_let_through(pg_url_factory, api_factory):
    async def nothing(conn, vid):
        pass

    async with api_factory(pg_url_factory("hot")) as api:
        refused = await _write_refused(api, nothing, 51, Conflict)
        assert refused.code == "insufficient_balance"


async def test_a_chain_head_moved_under_the_lock_refuses_the_write(pg_url_factory, api_factory):
    async def move_head(conn, vid):
        # A writer that bypassed the voucher lock (which the code never does) changes the head.
        await conn.execute("UPDATE vouchers SET head_hash = repeat('f', 64) WHERE id = $1", vid)

    async with api_factory(pg_url_factory("hot")) as api:
        await _write_refused(api, move_head, 1, asyncpg.SerializationError)


@pytest.mark.parametrize("reason", ["it's $$ done'); DROP TABLE journal; --", "quoted $vouchers_doc$ inside"])
async def test_text_reaches_the_journal_exactly_whichever_way_the_write_is_sent(pg_url_factory, api_factory, reason):
    async with api_factory(pg_url_factory("hot")) as api:
        pid, vid, agency = await _voucher(api)
        red = await api.ok("POST", "/redemptions", agency, json=api.redemption_body(
            {"id": vid, "enterprise_org_id": "ent-h"}, 5, 20), status=201)
        voided = await api.ok("POST", f"/redemptions/{red['id']}/void", agency, json={"reason": reason})
        assert voided["voided_reason"] == reason
        statement = await api.ok("GET", f"/vouchers/{vid}/statement", api.gov, key=None)
        assert statement["items"][-1]["kind"] == "void" and statement["items"][-1]["memo"] == reason
        check = await api.check()
        assert check["ok"], check["problems"]


async def test_idempotency_key_replays_on_the_hot_path_even_before_the_first_read(pg_url_factory, api_factory):
    from techbridge_shared.identity import Identity

    async with api_factory(pg_url_factory("hot")) as api:
        pid, vid, agency = await _voucher(api)
        body = api.redemption_body({"id": vid, "enterprise_org_id": "ent-h"}, 5, 20)
        first = await api.call("POST", "/redemptions", agency, json=body, key="k-1")
        assert first.status_code == 201, first.text
        again = await api.call("POST", "/redemptions", agency, json=body, key="k-1")
        assert again.status_code == 201 and again.json() == first.json()
        assert again.headers.get("Idempotent-Replayed") == "true"
        other = await api.call("POST", "/redemptions", agency, json={**body, "invoice_ref": "other"}, key="k-1")
        assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
        # The same client acting without an organisation is refused before any read: the key's
        # stored response still answers, as on every other path.
        orgless = Identity(sub=agency.sub, org=None, roles=agency.roles, client_id=agency.client_id)
        replayed = await api.call("POST", "/redemptions", orgless, json=body, key="k-1")
        assert replayed.status_code == 201 and replayed.json() == first.json()
        fresh = await api.call("POST", "/redemptions", orgless, json=body, key="k-2")
        assert fresh.status_code == 403
        settle_key = "s-1"
        s1 = await api.call("POST", f"/redemptions/{first.json()['id']}/settle", api.gov, key=settle_key)
        s2 = await api.call("POST", f"/redemptions/{first.json()['id']}/settle", api.gov, key=settle_key)
        assert s1.status_code == s2.status_code == 200 and s1.json() == s2.json()
        assert s2.headers.get("Idempotent-Replayed") == "true"
        assert await _state(api, vid) == (45, 0, 3)  # issue, reserve, settle: each once
        check = await api.check()
        assert check["ok"], check["problems"]


# --- reads without locks, checked at the write ------------------------------------------------

def _between_read_and_write(monkeypatch, method: str, meanwhile) -> list[bool]:
    """Run `meanwhile()` once, right after the first read a command makes without locks; return
    the `lock` flag of every read, so a test sees whether the command ran again under the lock."""
    original = getattr(hot.HotRepository, method)
    reads: list[bool] = []

    async def read_then_interfere(self, *args, **kw):
        reads.append(self._lock)
        found = await original(self, *args, **kw)
        if not self._lock and len(reads) == 1:
            await meanwhile()
        return found

    monkeypatch.setattr(hot.HotRepository, method, read_then_interfere)
    return reads


def _retries() -> int:
    from techbridge_vouchers.store.transact import retries
    return retries.get("unlocked_read_changed", 0)


async def test_a_command_whose_reads_did_not_change_writes_once_without_locks(pg_url_factory, api_factory,
                                                                             monkeypatch):
    locks: list[bool] = []
    original = hot.HotRepository.flush

    async def recording(self, events, idempotency, **kw):
        locks.append(self._lock)
        return await original(self, events, idempotency, **kw)

    monkeypatch.setattr(hot.HotRepository, "flush", recording)
    async with api_factory(pg_url_factory("hot")) as api:
        pid, vid, agency = await _voucher(api)
        before = _retries()
        red = await api.ok("POST", "/redemptions", agency, json=api.redemption_body(
            {"id": vid, "enterprise_org_id": "ent-h"}, 10, 20), status=201)
        await api.ok("POST", f"/redemptions/{red['id']}/settle", api.gov)
        assert locks == [False, False] and _retries() == before  # one write each, no second run
        assert await _state(api, vid) == (40, 0, 3)
        check = await api.check()
        assert check["ok"], check["problems"]


async def test_a_voucher_frozen_after_the_read_refuses_the_reservation(pg_url_factory, api_factory, monkeypatch):
    """Freezing moves no money and no chain head: only the row version shows the reservation
    was decided on an active voucher that is no longer active."""
    async with api_factory(pg_url_factory("hot")) as api:
        pid, vid, agency = await _voucher(api)
        before_state = await _state(api, vid)

        async def freeze():
            await api.ok("POST", f"/vouchers/{vid}/freeze", api.gov, json={"reason": "audit"})

        reads = _between_read_and_write(monkeypatch, "reservation_context", freeze)
        before = _retries()
        r = await api.call("POST", "/redemptions", agency, json=api.redemption_body(
            {"id": vid, "enterprise_org_id": "ent-h"}, 10, 20), key="k-frozen")
        assert r.status_code == 409 and r.json()["code"] == "voucher_frozen", r.text
        assert reads == [False, True] and _retries() == before + 1  # ran again under the lock
        assert await _state(api, vid) == before_state  # nothing was reserved
        check = await api.check()
        assert check["ok"], check["problems"]


async def test_a_reservation_voided_after_the_read_is_not_settled(pg_url_factory, api_factory, monkeypatch):
    async with api_factory(pg_url_factory("hot")) as api:
        pid, vid, agency = await _voucher(api)
        red = await api.ok("POST", "/redemptions", agency, json=api.redemption_body(
            {"id": vid, "enterprise_org_id": "ent-h"}, 10, 20), status=201)

        async def void():
            await api.ok("POST", f"/redemptions/{red['id']}/void", agency, json={"reason": "cancelled"})

        reads = _between_read_and_write(monkeypatch, "lock_redemption", void)
        r = await api.call("POST", f"/redemptions/{red['id']}/settle", api.gov, key="k-settle")
        assert r.status_code == 409 and r.json()["code"] == "redemption_voided", r.text
        assert reads == [False, False, True]  # the settlement's read, the void's, the settlement under the lock
        got = await api.ok("GET", f"/redemptions/{red['id']}", api.gov, key=None)
        assert got["state"] == "voided"
        assert await _state(api, vid) == (50, 0, 3)  # issue, reserve, void: no settlement
        check = await api.check()
        assert check["ok"], check["problems"]


async def test_a_key_answered_after_the_read_replays_that_answer(pg_url_factory, api_factory, monkeypatch):
    """Two requests with one key, the second answered between the first's read and its write:
    the first finds the key taken when it writes, runs again under the lock and replays."""
    async with api_factory(pg_url_factory("hot")) as api:
        pid, vid, agency = await _voucher(api)
        body = api.redemption_body({"id": vid, "enterprise_org_id": "ent-h"}, 10, 20)
        answers = []

        async def same_key():
            answers.append(await api.call("POST", "/redemptions", agency, json=body, key="k-same"))

        reads = _between_read_and_write(monkeypatch, "reservation_context", same_key)
        first = await api.call("POST", "/redemptions", agency, json=body, key="k-same")
        assert answers[0].status_code == first.status_code == 201, first.text
        assert first.json() == answers[0].json() and first.headers.get("Idempotent-Replayed") == "true"
        assert reads == [False, False, True]  # the first's read, the second's, the first under the lock
        assert await _state(api, vid) == (40, 10, 2)  # one reservation
        check = await api.check()
        assert check["ok"], check["problems"]


async def test_a_balance_moved_under_an_unchanged_row_runs_again_under_the_lock(pg_url_factory, api_factory,
                                                                              monkeypatch):
    """Only the overdraft guard sees this one (no code path moves a voucher's money without
    touching its row; a writer bypassing that is simulated): the command is not refused on the
    unlocked read's word but decided again under the lock, where the domain refuses it."""
    async with api_factory(pg_url_factory("hot")) as api:
        pid, vid, agency = await _voucher(api, 50)
        pool = await hot.pool_for(api.runtime.db, 2)

        async def drain():
            async with pool.acquire() as conn:
                await conn.execute("UPDATE accounts SET balance = 5 WHERE id = $1",
                                   voucher_account(pid, vid, AccountKind.AVAILABLE).id)

        reads = _between_read_and_write(monkeypatch, "reservation_context", drain)
        r = await api.call("POST", "/redemptions", agency, json=api.redemption_body(
            {"id": vid, "enterprise_org_id": "ent-h"}, 10, 20), key="k-drained")
        assert r.status_code == 409 and r.json()["code"] == "insufficient_balance", r.text
        assert reads == [False, True]
        assert (await _state(api, vid))[2] == 1  # nothing posted


# --- sub-balances of an agency's payable account ----------------------------------------------

async def _payable(api, pid: str, agency: str) -> tuple[int, int, int, int]:
    """(row balance, sum of sub-balances, balance as every reader sees it, paid)."""
    from techbridge_vouchers.domain.ledger import agency_accounts
    from techbridge_vouchers.store.transact import read
    payable, paid = (a.id for a in sorted(agency_accounts(pid, agency), key=lambda a: a.kind != AccountKind.PAYABLE))
    pool = await hot.pool_for(api.runtime.db, 2)
    async with pool.acquire() as conn:
        row = await conn.fetchval("SELECT balance FROM accounts WHERE id = $1", payable)
        credits = await conn.fetchval("SELECT COALESCE(sum(amount), 0) FROM account_credits WHERE account_id = $1",
                                      payable)
    seen = await read(api.runtime, lambda repo: repo.balances([payable, paid]))
    return row, credits, seen[payable], seen[paid]


async def test_settlements_credit_sub_balances_and_money_leaving_folds_them(pg_url_factory, api_factory):
    async with api_factory(pg_url_factory("hot")) as api:
        pid, vid, agency = await _voucher(api, 50)
        reds = [await api.ok("POST", "/redemptions", agency, json=api.redemption_body(
            {"id": vid, "enterprise_org_id": "ent-h"}, n, 2 * n), status=201) for n in (3, 4, 5)]
        for r in reds:
            await api.ok("POST", f"/redemptions/{r['id']}/settle", api.gov)
        # The settlements went to sub-balances, not the account's row; every reader sees 12.
        assert await _payable(api, pid, "agency-h") == (0, 12, 12, 0)
        await api.ok("POST", f"/redemptions/{reds[0]['id']}/payout", api.gov, json={"reference": "B-1"})
        assert await _payable(api, pid, "agency-h") == (9, 0, 9, 3)  # folded into the row, then paid
        # A claw-back (the general path) folds them too before it takes money out.
        more = await api.ok("POST", "/redemptions", agency, json=api.redemption_body(
            {"id": vid, "enterprise_org_id": "ent-h"}, 6, 12), status=201)
        await api.ok("POST", f"/redemptions/{more['id']}/settle", api.gov)
        assert await _payable(api, pid, "agency-h") == (9, 6, 15, 3)
        await api.ok("POST", f"/redemptions/{more['id']}/clawback", api.gov, json={"amount": {"amount": 6, "currency": "CNY"},
                                                                                 "reason": "not delivered"})
        assert await _payable(api, pid, "agency-h") == (9, 0, 9, 3)
        check = await api.check()
        assert check["ok"], check["problems"]


async def test_the_database_refuses_taking_more_than_row_and_sub_balances_hold(pg_url_factory, api_factory):
    """The overdraft guard counts the sub-balances once folded, and no more: a payout of more
    than the account holds in all is refused and leaves the sub-balances as they were."""
    from techbridge_vouchers.domain.ledger import agency_accounts
    async with api_factory(pg_url_factory("hot")) as api:
        pid, vid, agency = await _voucher(api, 50)
        red = await api.ok("POST", "/redemptions", agency, json=api.redemption_body(
            {"id": vid, "enterprise_org_id": "ent-h"}, 7, 14), status=201)
        await api.ok("POST", f"/redemptions/{red['id']}/settle", api.gov)
        before = await _payable(api, pid, "agency-h")
        assert before == (0, 7, 7, 0)
        payable, paid = sorted(agency_accounts(pid, "agency-h"), key=lambda a: a.kind != AccountKind.PAYABLE)
        pool = await hot.pool_for(api.runtime.db, 2)
        for amount, refused in ((8, True), (7, False)):
            async with pool.acquire() as conn:
                await conn.execute("BEGIN")
                try:
                    repo = hot.HotRepository(conn)
                    await repo.lock_redemption(red["id"])
                    await repo.post(JournalEntry.transfer(
                        source=payable, target=paid, amount=amount, id=f"pay-{amount}", kind=EntryKind.PAYOUT,
                        chain_key=vid, programme_id=pid, currency="CNY", created_at=now(), created_by="test",
                        voucher_id=vid, redemption_id=red["id"]))
                    if refused:
                        with pytest.raises(Conflict) as err:
                            await repo.flush([], None)
                        assert err.value.code == "insufficient_balance"
                    else:
                        await repo.flush([], None)
                finally:
                    await conn.execute("ROLLBACK")  # the one that went through is not kept either
        assert await _payable(api, pid, "agency-h") == before


async def test_only_credits_to_payable_accounts_on_the_hot_path_use_sub_balances(store_url, api_factory):
    """Reservations credit the voucher's reserved account in its row; on SQLite (one writer at a
    time) settlements credit the payable row itself: no sub-balance is ever written there."""
    async with api_factory(store_url) as api:
        pid, vid, agency = await _voucher(api, 50)
        red = await api.ok("POST", "/redemptions", agency, json=api.redemption_body(
            {"id": vid, "enterprise_org_id": "ent-h"}, 5, 10), status=201)
        await api.ok("POST", f"/redemptions/{red['id']}/settle", api.gov)
        from sqlalchemy import func, select
        from techbridge_vouchers.store.tables import account_credits, accounts
        async with api.runtime.db.sessionmaker() as s:
            credits = dict((await s.execute(select(account_credits.c.account_id, func.sum(account_credits.c.amount))
                                            .group_by(account_credits.c.account_id))).all())
            kinds = dict((await s.execute(select(accounts.c.id, accounts.c.kind))).all())
        if api.runtime.db.is_sqlite:
            assert credits == {}
        else:
            assert {kinds[a] for a in credits} == {"payable"} and sum(credits.values()) == 5
        assert await _state(api, vid) == (45, 0, 3)
        check = await api.check()
        assert check["ok"], check["problems"]


async def test_concurrent_settlements_and_payouts_of_one_agency_lose_nothing(pg_url_factory, api_factory):
    async with api_factory(pg_url_factory("hot")) as api:
        pid, vid, agency = await _voucher(api, 50)
        reds = [await api.ok("POST", "/redemptions", agency, json=api.redemption_body(
            {"id": vid, "enterprise_org_id": "ent-h"}, 1, 2), status=201) for _ in range(24)]

        async def settle_then_pay(i: int, r: dict):
            await api.ok("POST", f"/redemptions/{r['id']}/settle", api.gov)
            if i % 2 == 0:
                await api.ok("POST", f"/redemptions/{r['id']}/payout", api.gov, json={"reference": f"B-{i}"})

        await asyncio.gather(*(settle_then_pay(i, r) for i, r in enumerate(reds)))
        row, credits, payable, paid = await _payable(api, pid, "agency-h")
        assert (payable, paid) == (12, 12) and row + credits == 12
        check = await api.check()
        assert check["ok"], check["problems"]


# --- group commit ------------------------------------------------------------------------------

async def _written_later(api, agency, monkeypatch, requests: list[tuple[str, int]]) -> list[dict]:
    """Run a reservation per (voucher, amount) through the endpoint, keeping each write document
    instead of writing it: every command reads the state before any of them."""
    documents: list[dict] = []

    async def keep(self, doc):
        documents.append(doc)

    with monkeypatch.context() as patched:
        patched.setattr(hot.GroupCommit, "write", keep)
        for vid, amount in requests:
            await api.ok("POST", "/redemptions", agency, json=api.redemption_body(
                {"id": vid, "enterprise_org_id": "ent-h"}, amount, 2 * amount), status=201)
    return documents


async def test_concurrent_writes_commit_together_and_one_that_fails_writes_nothing(pg_url_factory, api_factory,
                                                                                  monkeypatch):
    async with api_factory(pg_url_factory("hot")) as api:
        pid, first, agency = await _voucher(api, 50)
        second = (await api.issued_voucher(pid, "ent-h", 50))["id"]
        before = [await _state(api, v) for v in (first, second)]
        # The second reservation of the first voucher read the version the first one changes.
        documents = await _written_later(api, agency, monkeypatch, [(first, 10), (first, 7), (second, 5)])
        path = await hot.hot_path_for(api.runtime.db, 2)
        group = hot.GroupCommit(path.pool, writers=1)
        outcomes = await asyncio.gather(*(group.write(d) for d in documents), return_exceptions=True)
        assert outcomes[0] is None and outcomes[2] is None
        assert isinstance(outcomes[1], asyncpg.SerializationError) and outcomes[1].sqlstate == "40001"
        assert (group.batches, group.documents) == (1, 3)  # one transaction for all three
        assert await _state(api, first) == (40, 10, before[0][2] + 1)  # the 7 left no trace
        assert await _state(api, second) == (45, 5, before[1][2] + 1)
        check = await api.check()
        assert check["ok"], check["problems"]


async def test_a_group_takes_at_most_its_limit_and_the_rest_follow(pg_url_factory, api_factory, monkeypatch):
    async with api_factory(pg_url_factory("hot")) as api:
        pid, vid, agency = await _voucher(api, 50)
        others = [(await api.issued_voucher(pid, "ent-h", 50))["id"] for _ in range(2)]
        documents = await _written_later(api, agency, monkeypatch, [(v, 3) for v in (vid, *others)])
        group = hot.GroupCommit((await hot.hot_path_for(api.runtime.db, 2)).pool, writers=1, batch_max=2)
        assert await asyncio.gather(*(group.write(d) for d in documents)) == [None, None, None]
        assert (group.batches, group.documents) == (2, 3)
        assert [(await _state(api, v))[:2] for v in (vid, *others)] == [(47, 3)] * 3


async def test_a_group_that_cannot_be_written_fails_each_of_its_commands(pg_url_factory, api_factory, monkeypatch):
    async with api_factory(pg_url_factory("hot")) as api:
        pid, vid, agency = await _voucher(api, 50)
        documents = await _written_later(api, agency, monkeypatch, [(vid, 3)])
        gone = await asyncpg.create_pool(hot._dsn(api.runtime.db.url), min_size=0, max_size=1)
        await gone.close()
        outcomes = await asyncio.gather(*(hot.GroupCommit(gone).write(documents[0]) for _ in range(2)),
                                        return_exceptions=True)
        assert all(isinstance(o, asyncpg.InterfaceError) for o in outcomes), outcomes
        assert (await _state(api, vid))[:2] == (50, 0)


async def test_every_group_locks_its_vouchers_in_id_order():
    """Concurrent groups each hold their rows until they commit: applied in voucher id order,
    two of them can wait for each other but never deadlock. (The order only; the server's side
    is the tests above.)"""
    sent: list[list[str]] = []

    class Connection:
        async def fetchval(self, sql, documents):
            sent.append([d["vouchers"][0]["id"] if d["vouchers"] else "" for d in documents])
            return [None] * len(documents)

    class Pool:
        def acquire(self):
            return contextlib.nullcontext(Connection())

    group = hot.GroupCommit(Pool(), writers=1)
    ids = ["v-9", "v-2", "v-5", None, "v-1"]
    await asyncio.gather(*(group.write({"vouchers": [{"id": i}] if i else []}) for i in ids))
    assert sent == [["", "v-1", "v-2", "v-5", "v-9"]]
