"""Bulk payout: a programme officer pays an agency all its settled, unpaid redemptions (of one
programme, settled before a time, if asked) in one idempotent operation.

One transaction: the vouchers concerned are locked in id order, the redemptions re-read under
those locks (so one paid or clawed back meanwhile is seen as it now is), each paid by its own
journal entry on its voucher's chain (as a single payout would be), and the batch record
written with its totals. Events: `redemption.paid` per redemption (naming the batch) and one
`payout-batch.paid` listing every item and entry, for reconciliation."""

from __future__ import annotations

from datetime import datetime

from techbridge_shared.uow import UnitOfWork

from ..domain import model as m
from ..events.published import PayoutBatchEvent, PayoutItem, PayoutTotalData, event
from ..store.repository import Repository
from .common import Actor, authorise, money, not_found, now
from .programmes import get_for_redemption as get_programme
from .redemptions import _post, publish as publish_redemption  # the same entry and event as a single payout


async def pay_agency(repo: Repository, uow: UnitOfWork, actor: Actor, agency_org_id: str, *, reference: str,
                     programme_id: str | None, settled_before: datetime | None, note: str = ""
                     ) -> tuple[m.PayoutBatch, list[tuple[m.Redemption, str | None, str | None]]]:
    if programme_id is not None:
        authorise(actor, await get_programme(repo, programme_id))  # 404 for an unknown programme
    candidates = await repo.payable_redemptions(agency_org_id, programme_id=programme_id,
                                                settled_before=settled_before)
    # Without a programme filter the batch may span programmes: the caller must govern each of them
    # (else 403 naming the first it does not; name programme_id to pay only one's own).
    for pid in sorted({r.programme_id for r in candidates} - {programme_id}):
        authorise(actor, await get_programme(repo, pid))
    await repo.lock_vouchers(r.voucher_id for r in candidates)
    # Under the locks: only what is still settled and unpaid.
    settled = await repo.payable_redemptions(agency_org_id, programme_id=programme_id, settled_before=settled_before,
                                             ids=[r.id for r in candidates])
    programmes = {pid: await get_programme(repo, pid) for pid in sorted({r.programme_id for r in settled})}
    batch, paid = m.payout_batch(agency_org_id, settled, programmes, reference=reference, programme_id=programme_id,
                                 settled_before=settled_before, note=note, now=now(), actor=actor.sub)
    items = []
    for r, entry in paid:
        await repo.save_redemption(r)
        digest = await _post(repo, entry)
        publish_redemption(uow, "paid", r, entry, digest)
        items.append((r, entry.id if entry else None, digest))
    await repo.add_payout_batch(batch)
    _publish(uow, batch, items, programmes)
    return batch, items


def _publish(uow: UnitOfWork, b: m.PayoutBatch, items, programmes: dict[str, m.Programme]) -> None:
    uow.publish(event("payout-batch", "paid", b.id, PayoutBatchEvent(
        batch_id=b.id, agency_org_id=b.agency_org_id, reference=b.reference, programme_id=b.programme_id,
        settled_before=b.settled_before, count=b.count,
        totals=[PayoutTotalData(programme_id=t.programme_id, amount=money(t.amount, t.currency), count=t.count)
                for t in b.totals],
        items=[PayoutItem(redemption_id=r.id, voucher_id=r.voucher_id, programme_id=r.programme_id,
                          amount=money(r.amount - r.clawed_back, r.currency), entry_id=eid, entry_hash=h)
               for r, eid, h in items],
        created_by=b.created_by, at=b.created_at)))


def _visible(actor: Actor, agency_org_id: str) -> bool:
    return actor.is_official or actor.org == agency_org_id


async def get(repo: Repository, actor: Actor, batch_id: str
              ) -> tuple[m.PayoutBatch, list[tuple[m.Redemption, str | None, str | None]]]:
    b = await repo.payout_batch(batch_id)
    if b is None or not _visible(actor, b.agency_org_id):
        raise not_found("payout_batch", batch_id)
    rs = await repo.batch_redemptions(b.id)
    entries = await repo.payout_entries([r.id for r in rs])
    return b, [(r, *entries.get(r.id, (None, None))) for r in rs]


async def listing(repo: Repository, actor: Actor, agency_org_id: str, *, limit: int, after) -> list[m.PayoutBatch]:
    if not _visible(actor, agency_org_id):
        raise not_found("agency", agency_org_id)
    return await repo.list_payout_batches(agency_org_id, limit=limit, after=after)
