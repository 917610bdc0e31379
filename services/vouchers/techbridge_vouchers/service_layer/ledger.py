"""The ledger check and statements: balances and history recomputed from the journal."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator

from .. import metrics
from ..domain.ledger import AccountKind, LedgerReport, check_ledger
from ..store.repository import Repository
from .common import Actor, not_found


async def check(repo: Repository, programme_id: str | None = None) -> LedgerReport:
    """Replay the journal and compare it with every stored balance and chain head; the verdict
    is exported as `techbridge_ledger_check_ok`."""
    report = check_ledger(
        await repo.stored_entries(programme_id=programme_id),
        await repo.stored_accounts(programme_id=programme_id),
        await repo.chain_heads(programme_id=programme_id),
    )
    metrics.observe(report, programme_scoped=programme_id is not None)
    return report


async def statement(repo: Repository, *, account_ids: list[str], limit: int, after_seq: int | None,
                    programme_id: str | None = None) -> tuple[dict[str, int], list[dict]]:
    balances = await repo.balances(account_ids) if account_ids else {}
    lines = await repo.entries_for(account_ids=account_ids if programme_id is None else None,
                                   programme_id=programme_id, limit=limit, after_seq=after_seq)
    return balances, lines


async def agency_accounts(repo: Repository, actor: Actor, agency_org_id: str) -> list[str]:
    if not (actor.is_official or actor.org == agency_org_id):
        raise not_found("agency", agency_org_id)
    return await repo.account_ids_of(agency_org_id, [AccountKind.PAYABLE, AccountKind.PAID])


CSV_COLUMNS = ["seq", "entry_id", "kind", "created_at", "created_by", "account_id", "amount", "currency",
               "voucher_id", "redemption_id", "reverses", "memo", "hash"]


async def journal_csv(repo: Repository, programme_id: str) -> AsyncIterator[str]:
    """The programme's journal, one row per posting, in sequence order."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    after = None
    while True:
        lines = await repo.entries_for(programme_id=programme_id, limit=500, after_seq=after)
        page, more = lines[:500], len(lines) > 500
        for line in page:
            for p in line["postings"]:
                writer.writerow([line["seq"], line["entry_id"], line["kind"], line["created_at"].isoformat(),
                                 line["created_by"], p["account_id"], p["amount"], line["currency"],
                                 line["voucher_id"] or "", line["redemption_id"] or "", line["reverses"] or "",
                                 line["memo"], line["hash"]])
        yield buf.getvalue()
        buf.seek(0)
        buf.truncate()
        if not more or not page:
            return
        after = page[-1]["seq"]
