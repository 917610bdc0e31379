"""Queries and writes of the valuation store; callers pass the unit of work's session."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain.defaults import ipc_subclass
from ..domain.snapshots import subject_from_data, transfer_from_data
from ..domain.subject import Subject, Transfer
from .tables import achievements, transfer_achievements, transfer_keys, transfers, valuations

# Transfer states by progress: a late or repeated event never moves a deal backwards.
TRANSFER_RANK = {"proposed": 0, "offer-made": 1, "signed": 2, "completed": 3, "cancelled": 3}
BUYER_STATES = ("signed", "completed")


def _now() -> str:
    return datetime.now(UTC).isoformat()


class Repository:
    def __init__(self, session: AsyncSession):
        self.session = session

    # -- achievements read model ---------------------------------------------------------
    async def upsert_achievement(self, data: dict[str, Any], status: str) -> bool:
        """Store the newest version; an older version arriving late changes nothing."""
        aid = str(data["achievement_id"])
        version = int(data.get("version") or 1)
        row = (await self.session.execute(
            select(achievements.c.version).where(achievements.c.achievement_id == aid)
        )).first()
        values = dict(owner_org_id=str(data.get("owner_org_id") or ""), version=version, status=status,
                      data=data, updated_at=_now())
        if row is None:
            await self.session.execute(insert(achievements).values(achievement_id=aid, **values))
            return True
        if version < row.version:
            return False
        await self.session.execute(update(achievements).where(achievements.c.achievement_id == aid).values(**values))
        return True

    async def set_achievement_status(self, achievement_id: str, owner_org_id: str | None, status: str) -> None:
        result = await self.session.execute(
            update(achievements).where(achievements.c.achievement_id == achievement_id)
            .values(status=status, updated_at=_now())
        )
        if result.rowcount == 0 and owner_org_id:
            # Known only by this fact so far; the published data may follow (or never come).
            await self.session.execute(insert(achievements).values(
                achievement_id=achievement_id, owner_org_id=owner_org_id, version=0, status=status,
                data={"achievement_id": achievement_id, "owner_org_id": owner_org_id, "version": 0},
                updated_at=_now(),
            ))

    async def subject(self, achievement_id: str) -> Subject | None:
        row = (await self.session.execute(
            select(achievements).where(achievements.c.achievement_id == achievement_id)
        )).first()
        if row is None or row.version == 0:
            return None
        return subject_from_data(row.data, row.status)

    # -- transfers read model ------------------------------------------------------------
    async def apply_transfer(self, data: dict[str, Any], status: str) -> bool:
        tid = str(data["transfer_id"])
        row = (await self.session.execute(select(transfers.c.status).where(transfers.c.transfer_id == tid))).first()
        if row is not None and TRANSFER_RANK.get(status, 0) < TRANSFER_RANK.get(row.status, 0):
            return False
        values = dict(
            status=status, seller_org_id=str(data.get("seller_org_id") or ""),
            buyer_org_id=str(data.get("buyer_org_id") or ""),
            completed_at=data.get("completed_at") if status == "completed" else None,
            data=data, updated_at=_now(),
        )
        if row is None:
            await self.session.execute(insert(transfers).values(transfer_id=tid, **values))
        else:
            await self.session.execute(update(transfers).where(transfers.c.transfer_id == tid).values(**values))
        await self.session.execute(delete(transfer_achievements).where(transfer_achievements.c.transfer_id == tid))
        await self.session.execute(delete(transfer_keys).where(transfer_keys.c.transfer_id == tid))
        aids = sorted({str(a) for a in data.get("achievement_ids") or ()})
        if aids:
            await self.session.execute(insert(transfer_achievements),
                                       [{"transfer_id": tid, "achievement_id": a} for a in aids])
        keys = sorted({f"ipc:{ipc_subclass(c)}" for c in data.get("ipc_codes") or () if str(c).strip()}
                      | {f"field:{str(f).lower()}"[:200] for f in data.get("fields") or () if str(f).strip()})
        if keys:
            await self.session.execute(insert(transfer_keys), [{"transfer_id": tid, "key": k} for k in keys])
        return True

    async def buyer_orgs(self, achievement_id: str) -> set[str]:
        rows = await self.session.execute(
            select(transfers.c.buyer_org_id)
            .join(transfer_achievements, transfer_achievements.c.transfer_id == transfers.c.transfer_id)
            .where(transfer_achievements.c.achievement_id == achievement_id, transfers.c.status.in_(BUYER_STATES))
        )
        return {r.buyer_org_id for r in rows}

    async def comparable_transfers(self, subject: Subject) -> list[Transfer]:
        keys = sorted({f"ipc:{ipc_subclass(c)}" for c in subject.ipc_codes if c.strip()}
                      | {f"field:{f.lower()}"[:200] for f in subject.fields if f.strip()})
        if not keys:
            return []
        matching = select(transfer_keys.c.transfer_id).where(transfer_keys.c.key.in_(keys)).distinct()
        rows = await self.session.execute(
            select(transfers.c.data).where(transfers.c.status == "completed", transfers.c.transfer_id.in_(matching))
            .order_by(transfers.c.completed_at.desc(), transfers.c.transfer_id)
        )
        return [transfer_from_data(r.data) for r in rows]

    # -- valuations ----------------------------------------------------------------------
    async def add_valuation(self, row: dict[str, Any]) -> None:
        await self.session.execute(insert(valuations).values(**row))

    async def valuation(self, valuation_id: str) -> dict[str, Any] | None:
        row = (await self.session.execute(select(valuations).where(valuations.c.valuation_id == valuation_id))).first()
        return dict(row._mapping) if row else None

    async def list_valuations(
        self, *, org: str | None, everything: bool, achievement_id: str | None,
        after: tuple[str, str] | None, limit: int,
    ) -> list[dict[str, Any]]:
        """Newest first; visibility as domain.access.may_see, expressed in SQL."""
        cols = [c for c in valuations.c if c.name not in ("result", "request", "subject_snapshot", "transfers_snapshot")]
        q = select(*cols)
        if not everything:
            if org is None:
                return []
            q = q.where(or_(
                valuations.c.requested_by_org_id == org,
                and_(valuations.c.owner_org_id == org, valuations.c.requester_role != "buyer"),
            ))
        if achievement_id:
            q = q.where(valuations.c.achievement_id == achievement_id)
        if after:
            created, vid = after
            q = q.where(or_(valuations.c.created_at < created,
                            and_(valuations.c.created_at == created, valuations.c.valuation_id < vid)))
        q = q.order_by(valuations.c.created_at.desc(), valuations.c.valuation_id.desc()).limit(limit + 1)
        return [dict(r._mapping) for r in await self.session.execute(q)]
