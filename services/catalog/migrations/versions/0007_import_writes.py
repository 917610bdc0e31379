"""PostgreSQL: less work per imported row in the server (SQLite is unchanged).

- The IPC count trigger of migration 0004 (`catalog_facets_ipc_inserted`) found the
  (achievement, subclass) pairs a statement introduced with a NOT EXISTS over the table whose
  inner test scanned the statement's transition table (which has no index) for every IPC row
  of the pair: at 2,000 imported achievements (3,300 IPC rows) 120-160 ms of the statement,
  60-80 us per imported achievement. A pair is new when every row the table now holds for it
  came from this statement, so the trigger now compares the statement's count of each pair
  with one index probe of the table's (ix_achievement_ipc_subclass): the same counts, 45 ms.
  The count tables are still read when searches are answered by SQL alone (store/search.py
  with its in-memory columns switched off), so they are kept exact.
- `ix_achievements_fts_rowid` indexes the rowid of SQLite's FTS5 row, which is always NULL on
  PostgreSQL (migration 0003 created it on both stores; 0004 rebuilt it on SQLite only):
  nothing reads it there, and every insert added an entry to it.

Revision ID: 0007
Revises: 0006
"""
from alembic import op

from techbridge_shared.migrations import sibling_revision

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

IPC = "status, subclass, ip_type, trl, modes_bits"

PG_IPC_INSERTED = f"""CREATE OR REPLACE FUNCTION catalog_facets_ipc_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- (achievement, subclass) pairs this statement introduced: every row of the pair the table
  -- holds now is one of the statement's (one index probe per pair, not a scan of new_rows).
  INSERT INTO facet_ipc_cells ({IPC}, n)
    SELECT a.status, f.subclass, a.ip_type, a.trl, a.modes_bits, count(*)
    FROM (SELECT n.achievement_id, n.subclass FROM new_rows n GROUP BY n.achievement_id, n.subclass
          HAVING count(*) = (SELECT count(*) FROM achievement_ipc i
                             WHERE i.subclass = n.subclass AND i.achievement_id = n.achievement_id)) f
    JOIN achievements a ON a.id = f.achievement_id
    GROUP BY a.status, f.subclass, a.ip_type, a.trl, a.modes_bits ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT ({IPC}) DO UPDATE SET n = facet_ipc_cells.n + excluded.n;
  RETURN NULL;
END $$"""


def _pg() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if not _pg():
        return
    op.execute(PG_IPC_INSERTED)
    op.drop_index("ix_achievements_fts_rowid", table_name="achievements")


def downgrade() -> None:
    if not _pg():
        return
    op.create_index("ix_achievements_fts_rowid", "achievements", ["fts_rowid"])
    former = next(s for s in sibling_revision(__file__, "0004_facet_counts.py").PG
                  if s.startswith("CREATE FUNCTION catalog_facets_ipc_inserted()"))
    op.execute(former.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
