"""Facet counts kept as they change, and indexes that let searches stay on narrow rows.

Counting facets over every visible listing is a scan of the whole catalog per facet; these
tables hold the same counts per combination of the facet values, maintained by triggers in the
same transaction as every insert, update and delete of an achievement or its IPC codes, so a
browse without text answers its facets from a few thousand rows whatever the catalog's size.

- facet_cells (status, ip_type, trl, modes_bits): the kind, TRL, transfer mode and status
  facets, and the total, under any filters on those four;
- facet_owner_cells (status, owner_org_id, ip_type, trl, modes_bits): the institution facet,
  and the others when the search filters on institutions;
- facet_ipc_cells (status, subclass, ip_type, trl, modes_bits): the IPC subclass facet (an
  achievement counts once per subclass, however many of its codes fall in it).

SQLite uses row triggers; PostgreSQL counts each INSERT statement's rows at once (statement
triggers with transition tables, so a bulk import updates each count once) and row triggers
for updates and deletes, which touch their two counts in key order so concurrent moves cannot
deadlock on them.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

CELL = "status, ip_type, trl, modes_bits"
OWNER = "status, owner_org_id, ip_type, trl, modes_bits"
IPC = "status, subclass, ip_type, trl, modes_bits"


def _tables() -> None:
    op.create_table(
        "facet_cells",
        sa.Column("status", sa.String(20), primary_key=True),
        sa.Column("ip_type", sa.String(30), primary_key=True),
        sa.Column("trl", sa.Integer, primary_key=True),
        sa.Column("modes_bits", sa.Integer, primary_key=True),
        sa.Column("n", sa.Integer, nullable=False),
    )
    op.create_table(
        "facet_owner_cells",
        sa.Column("status", sa.String(20), primary_key=True),
        sa.Column("owner_org_id", sa.String(64), primary_key=True),
        sa.Column("ip_type", sa.String(30), primary_key=True),
        sa.Column("trl", sa.Integer, primary_key=True),
        sa.Column("modes_bits", sa.Integer, primary_key=True),
        sa.Column("n", sa.Integer, nullable=False),
    )
    op.create_table(
        "facet_ipc_cells",
        sa.Column("status", sa.String(20), primary_key=True),
        sa.Column("subclass", sa.String(4), primary_key=True),
        sa.Column("ip_type", sa.String(30), primary_key=True),
        sa.Column("trl", sa.Integer, primary_key=True),
        sa.Column("modes_bits", sa.Integer, primary_key=True),
        sa.Column("n", sa.Integer, nullable=False),
    )


def _backfill() -> None:
    op.execute(f"INSERT INTO facet_cells ({CELL}, n) SELECT {CELL}, count(*) FROM achievements GROUP BY {CELL}")
    op.execute(f"INSERT INTO facet_owner_cells ({OWNER}, n) SELECT {OWNER}, count(*) FROM achievements GROUP BY {OWNER}")
    op.execute(f"INSERT INTO facet_ipc_cells ({IPC}, n) "
               "SELECT a.status, s.subclass, a.ip_type, a.trl, a.modes_bits, count(*) FROM "
               "(SELECT DISTINCT achievement_id, subclass FROM achievement_ipc) s "
               "JOIN achievements a ON a.id = s.achievement_id GROUP BY a.status, s.subclass, a.ip_type, a.trl, a.modes_bits")


# --- SQLite ------------------------------------------------------------------------------------

def _cell_inc(row: str) -> str:
    return (f"INSERT INTO facet_cells ({CELL}, n) VALUES ({row}.status, {row}.ip_type, {row}.trl, {row}.modes_bits, 1) "
            "ON CONFLICT (status, ip_type, trl, modes_bits) DO UPDATE SET n = facet_cells.n + 1;\n"
            f"INSERT INTO facet_owner_cells ({OWNER}, n) VALUES ({row}.status, {row}.owner_org_id, {row}.ip_type, "
            f"{row}.trl, {row}.modes_bits, 1) "
            f"ON CONFLICT ({OWNER}) DO UPDATE SET n = facet_owner_cells.n + 1;\n")


def _cell_dec(row: str) -> str:
    return (f"UPDATE facet_cells SET n = n - 1 WHERE status = {row}.status AND ip_type = {row}.ip_type "
            f"AND trl = {row}.trl AND modes_bits = {row}.modes_bits;\n"
            f"UPDATE facet_owner_cells SET n = n - 1 WHERE status = {row}.status AND owner_org_id = {row}.owner_org_id "
            f"AND ip_type = {row}.ip_type AND trl = {row}.trl AND modes_bits = {row}.modes_bits;\n")


def _same_cell(row: str) -> str:
    return f"status = {row}.status AND ip_type = {row}.ip_type AND trl = {row}.trl AND modes_bits = {row}.modes_bits"


CELL_MOVED = ("(OLD.status IS NOT NEW.status OR OLD.ip_type IS NOT NEW.ip_type OR OLD.trl IS NOT NEW.trl "
              "OR OLD.modes_bits IS NOT NEW.modes_bits)")


SQLITE = [
    f"""CREATE TRIGGER tr_facets_achievement_insert AFTER INSERT ON achievements BEGIN
{_cell_inc('NEW')}END""",
    f"""CREATE TRIGGER tr_facets_achievement_delete AFTER DELETE ON achievements BEGIN
{_cell_dec('OLD')}UPDATE facet_ipc_cells SET n = n - 1 WHERE {_same_cell('OLD')}
  AND subclass IN (SELECT DISTINCT subclass FROM achievement_ipc WHERE achievement_id = OLD.id);
END""",
    f"""CREATE TRIGGER tr_facets_achievement_update AFTER UPDATE OF status, ip_type, trl, modes_bits, owner_org_id
ON achievements WHEN {CELL_MOVED} OR OLD.owner_org_id IS NOT NEW.owner_org_id BEGIN
{_cell_dec('OLD')}{_cell_inc('NEW')}UPDATE facet_ipc_cells SET n = n - 1 WHERE {CELL_MOVED} AND {_same_cell('OLD')}
  AND subclass IN (SELECT DISTINCT subclass FROM achievement_ipc WHERE achievement_id = NEW.id);
INSERT INTO facet_ipc_cells ({IPC}, n)
  SELECT NEW.status, subclass, NEW.ip_type, NEW.trl, NEW.modes_bits, 1
  FROM (SELECT DISTINCT subclass FROM achievement_ipc WHERE achievement_id = NEW.id)
  WHERE {CELL_MOVED}
  ON CONFLICT ({IPC}) DO UPDATE SET n = facet_ipc_cells.n + 1;
END""",
    f"""CREATE TRIGGER tr_facets_ipc_insert AFTER INSERT ON achievement_ipc
WHEN NOT EXISTS (SELECT 1 FROM achievement_ipc WHERE achievement_id = NEW.achievement_id
                 AND subclass = NEW.subclass AND code_key <> NEW.code_key) BEGIN
INSERT INTO facet_ipc_cells ({IPC}, n)
  SELECT status, NEW.subclass, ip_type, trl, modes_bits, 1 FROM achievements WHERE id = NEW.achievement_id
  ON CONFLICT ({IPC}) DO UPDATE SET n = facet_ipc_cells.n + 1;
END""",
    """CREATE TRIGGER tr_facets_ipc_delete AFTER DELETE ON achievement_ipc
WHEN NOT EXISTS (SELECT 1 FROM achievement_ipc WHERE achievement_id = OLD.achievement_id AND subclass = OLD.subclass) BEGIN
UPDATE facet_ipc_cells SET n = n - 1 WHERE subclass = OLD.subclass
  AND (status, ip_type, trl, modes_bits) = (SELECT status, ip_type, trl, modes_bits FROM achievements WHERE id = OLD.achievement_id);
END""",
]

SQLITE_TRIGGERS = ("tr_facets_achievement_insert", "tr_facets_achievement_delete", "tr_facets_achievement_update",
                   "tr_facets_ipc_insert", "tr_facets_ipc_delete")

# --- PostgreSQL ------------------------------------------------------------------------------------

PG = [
    f"""CREATE FUNCTION catalog_facets_achievements_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO facet_cells ({CELL}, n)
    SELECT {CELL}, count(*) FROM new_rows GROUP BY {CELL} ORDER BY {CELL}
    ON CONFLICT (status, ip_type, trl, modes_bits) DO UPDATE SET n = facet_cells.n + excluded.n;
  INSERT INTO facet_owner_cells ({OWNER}, n)
    SELECT {OWNER}, count(*) FROM new_rows GROUP BY {OWNER} ORDER BY {OWNER}
    ON CONFLICT ({OWNER}) DO UPDATE SET n = facet_owner_cells.n + excluded.n;
  RETURN NULL;
END $$""",
    """CREATE TRIGGER tr_facets_achievement_insert AFTER INSERT ON achievements
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION catalog_facets_achievements_inserted()""",
    f"""CREATE FUNCTION catalog_facets_achievement_moved() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  d record;
BEGIN
  -- (key, delta) pairs applied in key order, so two transactions never wait on each other in a cycle.
  FOR d IN
    SELECT * FROM (VALUES (OLD.status, OLD.ip_type, OLD.trl, OLD.modes_bits, -1),
                          (NEW.status, NEW.ip_type, NEW.trl, NEW.modes_bits, 1)) v(status, ip_type, trl, modes_bits, delta)
    ORDER BY 1, 2, 3, 4
  LOOP
    INSERT INTO facet_cells ({CELL}, n) VALUES (d.status, d.ip_type, d.trl, d.modes_bits, d.delta)
      ON CONFLICT (status, ip_type, trl, modes_bits) DO UPDATE SET n = facet_cells.n + excluded.n;
  END LOOP;
  FOR d IN
    SELECT * FROM (VALUES (OLD.status, OLD.owner_org_id, OLD.ip_type, OLD.trl, OLD.modes_bits, -1),
                          (NEW.status, NEW.owner_org_id, NEW.ip_type, NEW.trl, NEW.modes_bits, 1))
      v(status, owner, ip_type, trl, modes_bits, delta)
    ORDER BY 1, 2, 3, 4, 5
  LOOP
    INSERT INTO facet_owner_cells ({OWNER}, n) VALUES (d.status, d.owner, d.ip_type, d.trl, d.modes_bits, d.delta)
      ON CONFLICT ({OWNER}) DO UPDATE SET n = facet_owner_cells.n + excluded.n;
  END LOOP;
  IF (OLD.status, OLD.ip_type, OLD.trl, OLD.modes_bits) IS DISTINCT FROM (NEW.status, NEW.ip_type, NEW.trl, NEW.modes_bits) THEN
    FOR d IN
      SELECT * FROM (
        SELECT OLD.status AS status, s.subclass, OLD.ip_type AS ip_type, OLD.trl AS trl, OLD.modes_bits AS modes_bits,
               -1 AS delta FROM (SELECT DISTINCT subclass FROM achievement_ipc WHERE achievement_id = OLD.id) s
        UNION ALL
        SELECT NEW.status, s.subclass, NEW.ip_type, NEW.trl, NEW.modes_bits, 1
        FROM (SELECT DISTINCT subclass FROM achievement_ipc WHERE achievement_id = NEW.id) s) v
      ORDER BY 1, 2, 3, 4, 5
    LOOP
      INSERT INTO facet_ipc_cells ({IPC}, n) VALUES (d.status, d.subclass, d.ip_type, d.trl, d.modes_bits, d.delta)
        ON CONFLICT ({IPC}) DO UPDATE SET n = facet_ipc_cells.n + excluded.n;
    END LOOP;
  END IF;
  RETURN NULL;
END $$""",
    """CREATE TRIGGER tr_facets_achievement_update AFTER UPDATE OF status, ip_type, trl, modes_bits, owner_org_id
  ON achievements FOR EACH ROW
  WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.ip_type IS DISTINCT FROM NEW.ip_type
        OR OLD.trl IS DISTINCT FROM NEW.trl OR OLD.modes_bits IS DISTINCT FROM NEW.modes_bits
        OR OLD.owner_org_id IS DISTINCT FROM NEW.owner_org_id)
  EXECUTE FUNCTION catalog_facets_achievement_moved()""",
    """CREATE FUNCTION catalog_facets_achievement_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE facet_cells SET n = n - 1 WHERE status = OLD.status AND ip_type = OLD.ip_type AND trl = OLD.trl
    AND modes_bits = OLD.modes_bits;
  UPDATE facet_owner_cells SET n = n - 1 WHERE status = OLD.status AND owner_org_id = OLD.owner_org_id
    AND ip_type = OLD.ip_type AND trl = OLD.trl AND modes_bits = OLD.modes_bits;
  UPDATE facet_ipc_cells SET n = n - 1 WHERE status = OLD.status AND ip_type = OLD.ip_type AND trl = OLD.trl
    AND modes_bits = OLD.modes_bits
    AND subclass IN (SELECT DISTINCT subclass FROM achievement_ipc WHERE achievement_id = OLD.id);
  RETURN NULL;
END $$""",
    """CREATE TRIGGER tr_facets_achievement_delete AFTER DELETE ON achievements FOR EACH ROW
  EXECUTE FUNCTION catalog_facets_achievement_deleted()""",
    f"""CREATE FUNCTION catalog_facets_ipc_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- (achievement, subclass) pairs this statement introduced: no row of the pair existed before it.
  INSERT INTO facet_ipc_cells ({IPC}, n)
    SELECT a.status, f.subclass, a.ip_type, a.trl, a.modes_bits, count(*)
    FROM (SELECT DISTINCT n.achievement_id, n.subclass FROM new_rows n
          WHERE NOT EXISTS (SELECT 1 FROM achievement_ipc i
                            WHERE i.achievement_id = n.achievement_id AND i.subclass = n.subclass
                              AND NOT EXISTS (SELECT 1 FROM new_rows m WHERE m.achievement_id = i.achievement_id
                                              AND m.code_key = i.code_key))) f
    JOIN achievements a ON a.id = f.achievement_id
    GROUP BY a.status, f.subclass, a.ip_type, a.trl, a.modes_bits ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT ({IPC}) DO UPDATE SET n = facet_ipc_cells.n + excluded.n;
  RETURN NULL;
END $$""",
    """CREATE TRIGGER tr_facets_ipc_insert AFTER INSERT ON achievement_ipc
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION catalog_facets_ipc_inserted()""",
    """CREATE FUNCTION catalog_facets_ipc_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE facet_ipc_cells c SET n = c.n - g.n
  FROM (SELECT a.status, f.subclass, a.ip_type, a.trl, a.modes_bits, count(*) AS n
        FROM (SELECT DISTINCT o.achievement_id, o.subclass FROM old_rows o
              WHERE NOT EXISTS (SELECT 1 FROM achievement_ipc i
                                WHERE i.achievement_id = o.achievement_id AND i.subclass = o.subclass)) f
        JOIN achievements a ON a.id = f.achievement_id
        GROUP BY a.status, f.subclass, a.ip_type, a.trl, a.modes_bits) g
  WHERE c.status = g.status AND c.subclass = g.subclass AND c.ip_type = g.ip_type AND c.trl = g.trl
    AND c.modes_bits = g.modes_bits;
  RETURN NULL;
END $$""",
    """CREATE TRIGGER tr_facets_ipc_delete AFTER DELETE ON achievement_ipc
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION catalog_facets_ipc_deleted()""",
]

PG_FUNCTIONS = ("catalog_facets_achievements_inserted", "catalog_facets_achievement_moved",
                "catalog_facets_achievement_deleted", "catalog_facets_ipc_inserted", "catalog_facets_ipc_deleted")


def upgrade() -> None:
    _tables()
    pg = op.get_bind().dialect.name == "postgresql"
    for statement in PG if pg else SQLITE:
        op.execute(statement)
    _backfill()
    if pg:
        # Count rows are rewritten on every change: leave room on each page for the new version
        # (HOT updates) and vacuum them after a few hundred changes, not a fifth of the table.
        for t in ("facet_cells", "facet_owner_cells", "facet_ipc_cells"):
            op.execute(f"ALTER TABLE {t} SET (fillfactor = 50, autovacuum_vacuum_scale_factor = 0, "
                       "autovacuum_vacuum_threshold = 500, autovacuum_analyze_scale_factor = 0, "
                       "autovacuum_analyze_threshold = 500)")
    # A narrow index in the order facet scans and filters read, so they never touch the wide
    # rows (which carry the JSON content); with the id, hit sets come from it alone too.
    op.create_index("ix_achievements_facets", "achievements",
                    ["status", "ip_type", "trl", "modes_bits", "owner_org_id", "price_currency", "price_amount", "id"])
    op.create_index("ix_achievement_ipc_subclass", "achievement_ipc", ["subclass", "achievement_id"])
    if not pg:
        # Full-text hits arrive as FTS5 rowids: carry what filters and ranking ties need.
        op.drop_index("ix_achievements_fts_rowid", table_name="achievements")
        op.create_index("ix_achievements_fts_rowid", "achievements",
                        ["fts_rowid", "status", "ip_type", "trl", "modes_bits", "owner_org_id", "listed_at", "id"])


def downgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    if pg:
        for t in ("achievements", "achievement_ipc"):
            for trig in ("tr_facets_achievement_insert", "tr_facets_achievement_update", "tr_facets_achievement_delete",
                         "tr_facets_ipc_insert", "tr_facets_ipc_delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {trig} ON {t}")
        for f in PG_FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {f}()")
    else:
        for trig in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {trig}")
        op.drop_index("ix_achievements_fts_rowid", table_name="achievements")
        op.create_index("ix_achievements_fts_rowid", "achievements", ["fts_rowid"])
    op.drop_index("ix_achievement_ipc_subclass", table_name="achievement_ipc")
    op.drop_index("ix_achievements_facets", table_name="achievements")
    for t in ("facet_ipc_cells", "facet_owner_cells", "facet_cells"):
        op.drop_table(t)
