from __future__ import annotations

from dataclasses import dataclass

from techbridge_shared.uow import UnitOfWork

from ..domain import model as m
from ..domain.ledger import AccountKind, JournalEntry, check_ledger, programme_account, programme_accounts
from ..events.published import ProgrammeEvent, event
from ..store.repository import Repository
from .common import Actor, authorise, money, not_found, now


@dataclass(frozen=True)
class ProgrammeView:
    programme: m.Programme
    budget: int
    unissued: int


async def _view(repo: Repository, p: m.Programme) -> ProgrammeView:
    b = await repo.balances([programme_account(p.id, AccountKind.FUNDING).id,
                             programme_account(p.id, AccountKind.UNISSUED).id])
    return ProgrammeView(p, -b[programme_account(p.id, AccountKind.FUNDING).id],
                         b[programme_account(p.id, AccountKind.UNISSUED).id])


def _publish(uow: UnitOfWork, verb: str, view: ProgrammeView, *, amount: int | None, entry: JournalEntry | None,
             digest: str | None) -> None:
    p = view.programme
    uow.publish(event("programme", verb, p.id, ProgrammeEvent(
        programme_id=p.id, name=p.terms.name, amount=money(amount, p.currency) if amount is not None else None,
        budget=money(view.budget, p.currency), unissued=money(view.unissued, p.currency),
        owner_org_id=p.owner_org_id, reviewer_org_ids=list(p.reviewer_org_ids),
        entry_id=entry.id if entry else None, entry_hash=digest, at=now())))


async def open_programme(repo: Repository, uow: UnitOfWork, actor: Actor, terms: m.ProgrammeTerms, budget: int, *,
                         owner_org_id: str | None = None, reviewer_org_ids: tuple[str, ...] = ()
                         ) -> ProgrammeView:
    """The caller's organisation owns the programme; an admin may open one for a named
    government organisation (`owner_org_id`)."""
    owner = _owner(actor, owner_org_id)
    p, entry = m.open_programme(m.new_id(), terms, budget, now=now(), actor=actor.sub, owner_org_id=owner,
                                reviewer_org_ids=reviewer_org_ids)
    await repo.add_programme(p)
    await repo.open_accounts(programme_accounts(p.id), p.currency)
    digest = await repo.post(entry)
    view = ProgrammeView(p, budget, budget)
    _publish(uow, "opened", view, amount=budget, entry=entry, digest=digest)
    return view


def _owner(actor: Actor, named: str | None) -> str:
    from ..domain.errors import Forbidden, invalid
    if named is not None and named != actor.org:
        if "admin" not in actor.roles:
            raise Forbidden("a programme is owned by the organisation that opens it; only an admin opens one for "
                            "another organisation (body.owner_org_id)", code="owner_not_caller")
        if not named.strip():
            raise invalid("body.owner_org_id", "an organisation id is not blank")
        return named
    if not actor.org:
        if "admin" in actor.roles:
            raise invalid("body.owner_org_id", "the caller acts for no organisation: name the government "
                          "organisation that owns the programme")
        actor.require_org()
    return actor.org


async def get(repo: Repository, programme_id: str, *, lock: bool = False) -> m.Programme:
    p = await repo.programme(programme_id, lock=lock)
    if p is None:
        raise not_found("programme", programme_id)
    return p


_terms_cache: dict[str, m.Programme] = {}


async def get_for_redemption(repo: Repository, programme_id: str) -> m.Programme:
    """A programme whose terms are current; its open/closed state may be stale. Terms never
    change after opening and redemption does not depend on the state (a closed programme stops
    applications and issuance, not the spending of vouchers already issued), so the hot path
    reads the programme row once per process."""
    p = _terms_cache.get(programme_id)
    if p is None:
        p = await get(repo, programme_id)
        if len(_terms_cache) > 10_000:
            _terms_cache.clear()
        _terms_cache[programme_id] = p
    return p


async def view(repo: Repository, programme_id: str) -> ProgrammeView:
    return await _view(repo, await get(repo, programme_id))


async def top_up(repo: Repository, uow: UnitOfWork, actor: Actor, programme_id: str, amount: int, currency: str,
                 memo: str) -> ProgrammeView:
    p = await get(repo, programme_id, lock=True)
    authorise(actor, p)
    if currency != p.currency:
        from ..domain.errors import invalid
        raise invalid("body.amount.currency", f"the programme counts in {p.currency}")
    entry = m.top_up(p, amount, now=now(), actor=actor.sub, memo=memo)
    digest = await repo.post(entry)
    v = await _view(repo, p)
    _publish(uow, "topped-up", v, amount=amount, entry=entry, digest=digest)
    return v


async def close(repo: Repository, uow: UnitOfWork, actor: Actor, programme_id: str) -> ProgrammeView:
    p = await get(repo, programme_id, lock=True)
    authorise(actor, p)
    p = m.close_programme(p, now=now())
    await repo.save_programme_state(p)
    v = await _view(repo, p)
    _publish(uow, "closed", v, amount=None, entry=None, digest=None)
    return v


async def dashboard(repo: Repository, programme_id: str) -> dict:
    """Budget, issued, reserved, settled, paid, expired, revoked, remaining: recomputed from the
    programme's journal (not from cached balances), with the programme's own check."""
    p = await get(repo, programme_id)
    report = check_ledger(await repo.stored_entries(programme_id=p.id), await repo.stored_accounts(programme_id=p.id),
                          await repo.chain_heads(programme_id=p.id))
    from .. import metrics
    metrics.observe(report, programme_scoped=True)
    f = next((x for x in report.programmes if x.programme_id == p.id), None)
    return {"programme": p, "figures": f, "ok": report.ok, "problems": report.problems}
