"""Read a running platform's databases directly, to check what was stored and delivered rather
than what the API answered: outboxes drained, inboxes and the gateway's event log holding each
event once."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

SERVICES_WITH_OUTBOX = ("catalog", "matching", "valuation", "vouchers")


def database_url(platform, name: str) -> str:
    """The asyncpg URL of a platform process's database (from the environment it was started with)."""
    url = platform.processes[name].env[f"{name.upper()}_DATABASE_URL"]
    return url.replace("postgresql+asyncpg://", "postgresql://")


def query(platform, name: str, sql: str, *args) -> list[dict]:
    import asyncpg

    async def run():
        conn = await asyncpg.connect(database_url(platform, name))
        try:
            return [dict(r) for r in await conn.fetch(sql, *args)]
        finally:
            await conn.close()

    with ThreadPoolExecutor(max_workers=1) as pool:  # safe under a running event loop too
        return pool.submit(asyncio.run, run()).result()


def outbox_since(platform, name: str, since) -> list[dict]:
    return query(platform, name, "SELECT event_id, type, key, published_at FROM outbox WHERE created_at >= $1 "
                                 "ORDER BY seq", since)


def gateway_log_counts(platform, event_ids: list[str]) -> dict[str, int]:
    """How many times each event is in the gateway's event log (it consumes every platform topic)."""
    rows = query(platform, "gateway", "SELECT event_id, count(*) AS n FROM event_log WHERE event_id = ANY($1::text[]) "
                                      "GROUP BY event_id", event_ids)
    return {r["event_id"]: r["n"] for r in rows}


def inbox_ids(platform, name: str, group: str) -> set[str]:
    rows = query(platform, name, "SELECT event_id FROM inbox WHERE consumer_group = $1", group)
    return {r["event_id"] for r in rows}
