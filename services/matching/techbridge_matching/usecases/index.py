"""Applying catalog events to the read model, embedding each version once, and saved matching."""

from __future__ import annotations

import logging
from datetime import UTC

from techbridge_shared.envelope import CloudEvent
from techbridge_shared.uow import UnitOfWork

from ..domain.matching import check_constraints, passes_hard
from ..events.consumed import read_model_values
from ..events.published import MatchFoundData, match_found_event
from ..retrieval.embedder import from_bytes, to_bytes
from ..store import repository as repo
from .engine import MatchingEngine, achievement_embedding_text, achievement_text
from .explain import explanation

log = logging.getLogger(__name__)


def _aware(dt):
    return dt.replace(tzinfo=UTC) if dt is not None and dt.tzinfo is None else dt


class AchievementIndexer:
    def __init__(self, engine: MatchingEngine, match_threshold: float, saved_match_candidates: int = 50):
        self.engine = engine
        self.match_threshold = match_threshold
        self.saved_match_candidates = saved_match_candidates

    async def on_published(self, uow: UnitOfWork, event: CloudEvent) -> None:
        s = uow.session
        # Bring the indexes up to date before this change is written, so they only ever hold
        # committed changes (this one is picked up by the next sync after it commits).
        await self.engine.sync(s)
        values = read_model_values(event.data, event.time)
        current = await repo.get_achievement(s, values["achievement_id"])
        if current is not None:
            newer = (current.version, _aware(current.last_event_time)) > (values["version"], event.time)
            if newer or (current.status != "published" and current.version >= values["version"]):
                log.info("ignoring stale %s for %s", event.type, values["achievement_id"])
                return
        await repo.upsert_achievement(s, values)
        row = await repo.get_achievement(s, values["achievement_id"])
        vector = None
        if self.engine.embedder is not None:
            raw = await repo.get_embedding(s, row.achievement_id, row.version, self.engine.model_id)
            if raw is None:
                vector = await self.engine.embed(achievement_embedding_text(row))
                if vector is not None:
                    await repo.add_embedding(s, row.achievement_id, row.version, self.engine.model_id, to_bytes(vector), event.time)
            else:
                vector = from_bytes(raw)
        await repo.record_change(s, "achievement", row.achievement_id, event.time)
        await self._saved_matching(uow, row, vector)

    async def on_removed(self, uow: UnitOfWork, event: CloudEvent, status: str) -> None:
        achievement_id = str(event.data.get("achievement_id") or event.subject)
        if await repo.set_achievement_status(uow.session, achievement_id, status, event.time):
            await repo.record_change(uow.session, "achievement", achievement_id, event.time)

    async def _saved_matching(self, uow: UnitOfWork, row, vector) -> None:
        """Tell the owners of published demands this achievement fits (once per pair)."""
        s = uow.session
        text = achievement_text(row)
        candidates = self.engine.demands.search(text, vector, list(row.ipc_codes or []), k=self.saved_match_candidates)
        if not candidates:
            return
        demands = await repo.demands_by_ids(s, [c.doc_id for c in candidates])
        facts = repo.facts_from_row(row)
        doc_terms = set(self.engine.terms(text))
        for cand in candidates:
            demand = demands.get(cand.doc_id)
            if demand is None or demand.status.value != "published" or demand.owner_org_id == row.owner_org_id:
                continue
            checks = check_constraints(demand, facts)
            if not passes_hard(checks):
                continue
            d_vec = self.engine.demands.vector(demand.id)
            evidence = self.engine.achievements.evidence(
                demand.query_text, d_vec, list(demand.ipc_codes), doc_terms, vector, list(row.ipc_codes or []),
                doc_id=row.achievement_id)
            if evidence.relevance < self.match_threshold or await repo.notified(s, demand.id, row.achievement_id):
                continue
            await repo.add_notification(s, dict(demand_id=demand.id, achievement_id=row.achievement_id,
                                                 achievement_version=row.version, relevance=evidence.relevance,
                                                 created_at=row.updated_at))
            uow.publish(match_found_event(MatchFoundData(
                demand_id=demand.id, demand_owner_org_id=demand.owner_org_id, achievement_id=row.achievement_id,
                achievement_version=row.version, score=evidence.relevance,
                explanation=explanation(evidence, checks, query_text=demand.query_text),
            )))
