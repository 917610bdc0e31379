"""Achievements: drafting, the review workflow, what each caller may see, and the history.

Every change loads the aggregate, lets the domain decide, saves it under an optimistic version
check, appends a history row and publishes the fact, all in the caller's unit of work.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from techbridge_shared.envelope import CloudEvent, new_event
from techbridge_shared.errors import Conflict, FieldError, Forbidden, NotFound, ValidationFailed
from techbridge_shared.uow import UnitOfWork

from ..domain.access import can_read, can_see_confidential, is_owner
from ..domain.achievement import Achievement
from ..domain.history import diff
from ..domain.model import PUBLIC_STATUSES, Status
from ..domain.rules import AchievementContent, check_content
from ..domain.search import SearchQuery, SearchResult, Viewer
from ..domain.workflow import ensure_editable
from ..events.models import SERVICE, AchievementFact, AchievementListed
from ..store.repository import Achievements, History, Organisations
from ..store.search import Search
from .common import SYSTEM, Actor, check_version, now, validated

log = logging.getLogger(__name__)

OWNER_ACTIONS = frozenset({"submit", "withdraw", "renew", "reopen"})
REVIEWER_ACTIONS = frozenset({"publish", "return", "reject"})
REASON_REQUIRED = frozenset({"return", "reject"})
# Which fact each workflow action announces (renew of a live listing is an update).
FACT_OF = {
    "submit": "submitted", "publish": "published", "return": "returned", "reject": "rejected",
    "withdraw": "withdrawn", "expire": "expired", "deal_completed": "transferred",
}


@dataclass
class AchievementView:
    achievement: Achievement
    owner_name: str | None
    confidential_visible: bool
    valuation: dict | None
    deal_party: bool


# --- events ------------------------------------------------------------------------------------

def listed_event(a: Achievement, verb: str) -> CloudEvent:
    c = a.content
    data = AchievementListed(
        achievement_id=a.id, version=a.version, owner_org_id=a.owner_org_id,
        **a.published_view() | {"ipc_codes": c.all_ipc_codes()},
        published_at=a.published_at or a.updated_at, status=a.status.value, expires_at=a.expires_at,
    )
    return new_event(service=SERVICE, aggregate="achievement", verb=verb, subject=a.id, data=data)


def fact_event(a: Achievement, verb: str, *, reason: str | None = None, **extra: Any) -> CloudEvent:
    data = AchievementFact(achievement_id=a.id, owner_org_id=a.owner_org_id, version=a.version,
                           status=a.status.value, reason=reason, **extra)
    return new_event(service=SERVICE, aggregate="achievement", verb=verb, subject=a.id, data=data)


async def _history(uow: UnitOfWork, actor: Actor, a: Achievement, action: str, *, before: Status | None,
                   reason: str | None = None, changes: list | None = None, at: datetime) -> None:
    await History(uow.session).add(
        aggregate="achievement", aggregate_id=a.id, at=at, actor=actor.sub, actor_org=actor.org,
        action=action, from_status=before.value if before else None, to_status=a.status.value,
        reason=reason, changes=changes or [],
    )


async def _load(uow: UnitOfWork, achievement_id: str) -> Achievement:
    a = await Achievements(uow.session).get(achievement_id, for_update=True)
    if a is None:
        raise NotFound(f"achievement {achievement_id} does not exist")
    return a


async def _save(uow: UnitOfWork, after: Achievement, expected: int, *, content_changed: bool) -> None:
    if not await Achievements(uow.session).save(after, expected, content_changed=content_changed):
        raise Conflict("the achievement changed concurrently; read it again and retry", code="concurrent_update")


def _hidden(actor: Actor, a: Achievement, parties: set[str]) -> bool:
    return not can_read(a.status, caller_org=actor.org, roles=actor.roles, owner_org_id=a.owner_org_id,
                        deal_parties=parties)


# --- commands ----------------------------------------------------------------------------------

async def create(uow: UnitOfWork, actor: Actor, content: AchievementContent) -> Achievement:
    if not actor.org:
        raise Forbidden("your identity names no organisation; achievements belong to a registered organisation")
    org = await Organisations(uow.session).get(actor.org)
    if org is None:
        raise Conflict(f"organisation {actor.org} is not registered; register it before listing achievements",
                       code="organisation_not_registered")
    check_content(content)
    if not content.region and org["region"]:
        content = content.model_copy(update={"region": org["region"]})
    t = now()
    a = Achievement(id=str(uuid.uuid4()), owner_org_id=actor.org, status=Status.draft, version=1,
                    content=content, created_at=t, updated_at=t, listed_at=t)
    await Achievements(uow.session).add(a)
    await _history(uow, actor, a, "create", before=None, changes=diff(None, content.model_dump(mode="json")), at=t)
    return a


async def edit(uow: UnitOfWork, actor: Actor, achievement_id: str, patch: dict, expected_version: int | None) -> Achievement:
    a = await _load(uow, achievement_id)
    if not is_owner(actor.org, a.owner_org_id):
        if _hidden(actor, a, set()):
            raise NotFound(f"achievement {achievement_id} does not exist")
        raise Forbidden("only the owner organisation may edit an achievement")
    ensure_editable(a.status)
    check_version(expected_version, a.version, required=True)
    content = validated(AchievementContent, {**a.content.model_dump(mode="json"), **patch})
    check_content(content)
    changes = diff(a.content.model_dump(mode="json"), content.model_dump(mode="json"))
    if not changes:
        return a
    t = now()
    after = a.edited(content, t)
    await _save(uow, after, a.version, content_changed=True)
    await _history(uow, actor, after, "edit", before=a.status, changes=changes, at=t)
    if after.is_listed and after.published_fields_differ(a):
        uow.publish(listed_event(after, "updated"))
    return after


async def act(uow: UnitOfWork, actor: Actor, achievement_id: str, action: str, *, reason: str | None,
              expected_version: int | None, listing_ttl: timedelta) -> Achievement:
    a = await _load(uow, achievement_id)
    owner = is_owner(actor.org, a.owner_org_id)
    if action in OWNER_ACTIONS and not owner:
        if _hidden(actor, a, set()):
            raise NotFound(f"achievement {achievement_id} does not exist")
        raise Forbidden(f"only the owner organisation may {action} an achievement")
    if action in REVIEWER_ACTIONS and not actor.reviewer:
        if _hidden(actor, a, set()):
            raise NotFound(f"achievement {achievement_id} does not exist")
        raise Forbidden(f"only a reviewer (admin or government) may {action} an achievement")
    if action in REASON_REQUIRED and not (reason and reason.strip()):
        raise ValidationFailed(
            f"a reason is required to {action} an achievement",
            errors=[FieldError(field="body.reason", message="tell the owner what to correct or why")],
        )
    check_version(expected_version, a.version, required=False)
    t = now()
    after, tr = a.moved(action, t, reason=reason, listing_ttl=listing_ttl)
    await _save(uow, after, a.version, content_changed=False)
    await _history(uow, actor, after, action, before=a.status, reason=reason, at=t)
    _announce(uow, a, after, action, reason)
    return after


def _announce(uow: UnitOfWork, before: Achievement, after: Achievement, action: str, reason: str | None,
              **extra: Any) -> None:
    if action == "renew":
        uow.publish(listed_event(after, "published" if before.status == Status.expired else "updated"))
    elif action == "publish":
        uow.publish(listed_event(after, "published"))
    elif action in FACT_OF:
        uow.publish(fact_event(after, FACT_OF[action], reason=reason, **extra))
    elif after.status == Status.expired and before.status != Status.expired:
        uow.publish(fact_event(after, "expired", reason=reason))


async def expire_due(uow: UnitOfWork, at: datetime, batch: int = 200) -> list[str]:
    """Expire listings whose time ran out; returns their ids."""
    repo = Achievements(uow.session)
    expired = []
    for achievement_id in await repo.due_for_expiry(at, batch):
        a = await repo.get(achievement_id, for_update=True)
        if a is None or a.status != Status.published or a.expires_at is None or a.expires_at > at:
            continue
        after, _ = a.moved("expire", at, reason="listing period ended")
        await _save(uow, after, a.version, content_changed=False)
        await _history(uow, SYSTEM, after, "expire", before=a.status, reason="listing period ended", at=at)
        uow.publish(fact_event(after, "expired", reason="listing period ended"))
        expired.append(a.id)
    return expired


# --- queries -----------------------------------------------------------------------------------

async def view(session, actor: Actor, achievement_id: str) -> AchievementView:
    repo = Achievements(session)
    a = await repo.get(achievement_id)
    if a is None:
        raise NotFound(f"achievement {achievement_id} does not exist")
    # Registered co-owners read like the owner (they own the result too); deal parties as well.
    parties = await repo.deal_party_orgs(a.id) | {c.org_id for c in a.content.co_owners if c.org_id}
    if _hidden(actor, a, parties):
        raise NotFound(f"achievement {achievement_id} does not exist")
    confidential = can_see_confidential(caller_org=actor.org, owner_org_id=a.owner_org_id, deal_parties=parties)
    names = await Organisations(session).names([a.owner_org_id])
    # The valuation shown: the caller's own if it asked for one, else the owner's.
    wanted = [a.owner_org_id] + ([actor.org] if actor.org else [])
    vals = await repo.valuations_of(a.id, wanted)
    valuation = vals.get(actor.org) if actor.org else None
    valuation = valuation or vals.get(a.owner_org_id)
    return AchievementView(a, names.get(a.owner_org_id), confidential, valuation,
                           deal_party=actor.org in parties if actor.org else False)


async def history_page(session, actor: Actor, achievement_id: str, *, limit: int, after_seq: int | None) -> list[dict]:
    a = await Achievements(session).get(achievement_id)
    if a is None or _hidden(actor, a, set()):
        raise NotFound(f"achievement {achievement_id} does not exist")
    if not (is_owner(actor.org, a.owner_org_id) or actor.reviewer):
        raise Forbidden("only the owner organisation and reviewers may read an achievement's history")
    return await History(session).page("achievement", achievement_id, limit=limit, after_seq=after_seq)


class FacetCache:
    """Facet counts per (text, filters, what the viewer may see), kept for a few seconds.

    Counting is the costly part of a search (a grouped scan per facet over every hit) and its
    answer barely moves from one second to the next, so bursts of the same browse or the pages
    of one search share it. A TTL of 0 turns it off."""

    def __init__(self, ttl_s: float, max_entries: int = 2048):
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[Any, tuple[float, dict]] = {}

    @staticmethod
    def key(query: SearchQuery, viewer: Viewer) -> Any:
        public_only = bool(query.statuses) and set(query.statuses) <= PUBLIC_STATUSES
        who = "public" if public_only else (viewer.org, viewer.reviewer)
        return (replace(query, cursor=None, limit=0, sort="", facets=True), who)

    def get(self, key: Any, at: float) -> dict | None:
        hit = self._entries.get(key)
        if hit is None or at - hit[0] > self.ttl_s:
            return None
        return hit[1]

    def put(self, key: Any, at: float, facets: dict) -> None:
        if self.ttl_s <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self._entries = {k: v for k, v in self._entries.items() if at - v[0] <= self.ttl_s}
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
        self._entries[key] = (at, facets)


async def search(session, actor: Actor, query: SearchQuery,
                 cache: FacetCache | None = None) -> tuple[SearchResult, dict[str, str]]:
    viewer = Viewer(org=actor.org, reviewer=actor.reviewer)
    store = Search(session)
    result = await store.run(query, viewer)
    if query.facets:
        key, at = FacetCache.key(query, viewer), time.monotonic()
        facets = cache.get(key, at) if cache else None
        if facets is None:
            facets = await store.facets(query, viewer)
            if cache:
                cache.put(key, at, facets)
        result.facets = facets
    names = await Organisations(session).names(h.row["owner_org_id"] for h in result.hits)
    return result, names


# --- other services' facts -----------------------------------------------------------------------

MATCHING = Actor(sub="system:matching", org=None, roles=frozenset())
VALUATION = Actor(sub="system:valuation", org=None, roles=frozenset())


async def on_transfer(uow: UnitOfWork, event: CloudEvent, state: str) -> None:
    """A deal over achievements was signed, completed or cancelled in matching."""
    d = event.data
    transfer_id, seller, buyer = d.get("transfer_id"), d.get("seller_org_id"), d.get("buyer_org_id")
    if not (transfer_id and seller and buyer):
        raise ValueError(f"transfer event {event.id} lacks transfer_id, seller_org_id or buyer_org_id")
    repo = Achievements(uow.session)
    t = now()
    for achievement_id in d.get("achievement_ids") or []:
        a = await repo.get(achievement_id, for_update=True)
        if a is None:
            log.warning("transfer %s names unknown achievement %s", transfer_id, achievement_id)
            continue
        if a.owner_org_id != seller:
            # Never let a deal we cannot trust open confidential details to its parties.
            log.warning("transfer %s: seller %s does not own achievement %s", transfer_id, seller, achievement_id)
            continue
        await repo.record_deal(transfer_id=transfer_id, achievement_id=a.id, seller=seller, buyer=buyer,
                               mode=d.get("mode"), state=state, now=t)
        action = {"signed": "deal_signed", "completed": "deal_completed", "cancelled": "deal_cancelled"}[state]
        if state == "cancelled" and (a.status != Status.under_negotiation or await repo.active_deals(a.id) > 0):
            await _history(uow, MATCHING, a, "deal_cancelled", before=a.status,
                           reason=f"transfer {transfer_id} cancelled", at=t)
            continue
        if state == "completed" and a.status == Status.transferred:
            continue
        try:
            after, _ = a.moved(action, t, reason=f"transfer {transfer_id} {state}")
        except Conflict:
            log.info("transfer %s %s: achievement %s stays %s", transfer_id, state, a.id, a.status.value)
            await _history(uow, MATCHING, a, action, before=a.status, reason=f"transfer {transfer_id} {state}", at=t)
            continue
        await _save(uow, after, a.version, content_changed=False)
        await _history(uow, MATCHING, after, action, before=a.status, reason=f"transfer {transfer_id} {state}", at=t)
        extra = {"transfer_id": transfer_id, "buyer_org_id": buyer} if state == "completed" else {}
        _announce(uow, a, after, action, d.get("cancelled_reason") if state == "cancelled" else None, **extra)


async def on_valuation(uow: UnitOfWork, event: CloudEvent) -> None:
    d = event.data
    repo = Achievements(uow.session)
    a = await repo.get(d["achievement_id"])
    if a is None:
        log.warning("valuation %s of unknown achievement %s", d.get("valuation_id"), d.get("achievement_id"))
        return
    low, mid, high = d["low"], d["mid"], d["high"]
    completed = datetime.fromisoformat(d["completed_at"].replace("Z", "+00:00")) if d.get("completed_at") else event.time
    await repo.record_valuation({
        "achievement_id": a.id, "requested_by_org_id": d.get("requested_by_org_id") or a.owner_org_id,
        "valuation_id": d["valuation_id"], "low_amount": int(low["amount"]), "mid_amount": int(mid["amount"]),
        "high_amount": int(high["amount"]), "currency": low.get("currency", "CNY"),
        "methods": list(d.get("methods") or []), "completed_at": completed,
    })
