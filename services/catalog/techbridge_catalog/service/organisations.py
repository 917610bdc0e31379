"""The organisation registry: who is who on the platform, announced to every service."""

from __future__ import annotations

import uuid

from techbridge_shared.envelope import new_event
from techbridge_shared.errors import Conflict, Forbidden, NotFound
from techbridge_shared.money import Money
from techbridge_shared.uow import UnitOfWork

from ..domain.history import diff
from ..domain.rules import OrganisationContent
from ..events.models import SERVICE, OrganisationData
from ..store.repository import History, Organisations
from .common import Actor, check_version, now, validated

REGISTRAR_ROLES = frozenset({"admin", "government"})


def content_of(row: dict) -> OrganisationContent:
    revenue = (
        Money(amount=row["revenue_amount"], currency=row["revenue_currency"])
        if row["revenue_amount"] is not None else None
    )
    return OrganisationContent.model_construct(
        name=row["name"], name_en=row["name_en"], kind=row["kind"], region=row["region"],
        credit_code=row["credit_code"], headcount=row["headcount"], annual_revenue=revenue,
        registered_on=row["registered_on"],
    )


def _columns(c: OrganisationContent) -> dict:
    return {
        "name": c.name, "name_en": c.name_en, "kind": c.kind.value if hasattr(c.kind, "value") else c.kind,
        "region": c.region, "credit_code": c.credit_code, "headcount": c.headcount,
        "revenue_amount": c.annual_revenue.amount if c.annual_revenue else None,
        "revenue_currency": c.annual_revenue.currency if c.annual_revenue else None,
        "registered_on": c.registered_on,
    }


def _event(verb: str, org_id: str, c: OrganisationContent):
    data = OrganisationData(organisation_id=org_id, **c.model_dump(mode="json"))
    return new_event(service=SERVICE, aggregate="organisation", verb=verb, subject=org_id, data=data)


def _snapshot(c: OrganisationContent) -> dict:
    return c.model_dump(mode="json")


async def register(uow: UnitOfWork, actor: Actor, content: OrganisationContent, org_id: str | None) -> dict:
    """Admins and government register any organisation; anyone else registers only the
    organisation their identity already names (self-registration after sign-up)."""
    if not (actor.roles & REGISTRAR_ROLES):
        if not actor.org:
            raise Forbidden("only admins and government may register organisations for others")
        if org_id and org_id != actor.org:
            raise Forbidden("you may register only your own organisation")
        org_id = actor.org
    org_id = org_id or str(uuid.uuid4())
    repo = Organisations(uow.session)
    if await repo.get(org_id):
        raise Conflict(f"organisation {org_id} is already registered", code="already_registered")
    existing = await repo.by_credit_code(content.credit_code)
    if existing:
        raise Conflict(
            f"credit code {content.credit_code} is already registered to organisation {existing['id']}",
            code="duplicate_credit_code",
        )
    t = now()
    await repo.add({"id": org_id, **_columns(content), "version": 1, "created_at": t, "updated_at": t})
    await History(uow.session).add(
        aggregate="organisation", aggregate_id=org_id, at=t, actor=actor.sub, actor_org=actor.org,
        action="register", from_status=None, to_status=None, reason=None, changes=diff(None, _snapshot(content)),
    )
    uow.publish(_event("registered", org_id, content))
    row = await repo.get(org_id)
    return row


async def update(uow: UnitOfWork, actor: Actor, org_id: str, patch: dict, expected_version: int | None) -> dict:
    repo = Organisations(uow.session)
    row = await repo.get(org_id)
    if row is None:
        raise NotFound(f"organisation {org_id} is not registered")
    if not (actor.roles & REGISTRAR_ROLES) and actor.org != org_id:
        raise Forbidden("only members of the organisation, admins and government may change it")
    check_version(expected_version, row["version"], required=True)
    before = content_of(row)
    merged = {**_snapshot(before), **patch}
    after = validated(OrganisationContent, merged)
    if after.credit_code != before.credit_code:
        other = await repo.by_credit_code(after.credit_code)
        if other and other["id"] != org_id:
            raise Conflict(f"credit code {after.credit_code} is already registered to organisation {other['id']}",
                           code="duplicate_credit_code")
    changes = diff(_snapshot(before), _snapshot(after))
    if not changes:
        return row
    t = now()
    if not await repo.update(org_id, row["version"], {**_columns(after), "version": row["version"] + 1, "updated_at": t}):
        raise Conflict("the organisation changed concurrently; read it again and retry", code="concurrent_update")
    await History(uow.session).add(
        aggregate="organisation", aggregate_id=org_id, at=t, actor=actor.sub, actor_org=actor.org,
        action="edit", from_status=None, to_status=None, reason=None, changes=changes,
    )
    uow.publish(_event("updated", org_id, after))
    return await repo.get(org_id)


async def get(session, org_id: str) -> dict:
    row = await Organisations(session).get(org_id)
    if row is None:
        raise NotFound(f"organisation {org_id} is not registered")
    return row
