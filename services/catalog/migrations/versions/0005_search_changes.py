"""A log of which achievements changed, so every replica's in-memory search columns stay exact.

store/search.py keeps the values searches filter and count on (status, kind, TRL, modes, owner,
price, listing time, IPC codes) of every achievement in memory, per process, and counts facets
and ranks text hits there instead of re-reading tens of thousands of rows per search. Before
each search it reads which achievements changed since it last looked and re-reads just those,
in the search's own read transaction; so it never answers from before a committed change,
whichever process made it.

- search_changes: one row per changed achievement (insert, delete, an update of a searched
  column, an IPC code added or removed), written by triggers in the writer's transaction.
  SQLite numbers them with the rowid: writers are serialised, so the numbers are in commit
  order and "everything below max + 1" is complete once seen. PostgreSQL records the writing
  transaction's id; a reader takes the oldest transaction still running (its snapshot's xmin)
  as its horizon: every transaction below it has ended, so its changes are visible to that
  snapshot, and later ones are re-read next time (re-reading a row is idempotent).
- search_horizon: one row; `pruned_upto` is the highest number (SQLite seq, PostgreSQL
  transaction id) of a change already deleted, `keep` how many recent changes are kept.
  Every 64th change deletes those older than `keep`; a reader whose horizon is not above
  `pruned_upto` may have missed a deleted change, so it loads everything again.

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

KEEP = 100_000  # recent changes kept; a replica idle for longer reloads its columns
PRUNE_EVERY = 64

# The columns the in-memory search columns hold (an update of any other column is not logged).
SEARCHED = ("status", "ip_type", "trl", "modes_bits", "owner_org_id", "price_amount", "price_currency", "listed_at",
            "fts_rowid")


def _changed(distinct: str) -> str:
    return " OR ".join(f"OLD.{c} {distinct} NEW.{c}" for c in SEARCHED)


SQLITE = [
    "CREATE TRIGGER tr_search_achievement_insert AFTER INSERT ON achievements BEGIN "
    "INSERT INTO search_changes (achievement_id) VALUES (NEW.id); END",
    f"CREATE TRIGGER tr_search_achievement_update AFTER UPDATE OF {', '.join(SEARCHED)} ON achievements "
    f"WHEN {_changed('IS NOT')} BEGIN INSERT INTO search_changes (achievement_id) VALUES (NEW.id); END",
    "CREATE TRIGGER tr_search_achievement_delete AFTER DELETE ON achievements BEGIN "
    "INSERT INTO search_changes (achievement_id) VALUES (OLD.id); END",
    "CREATE TRIGGER tr_search_ipc_insert AFTER INSERT ON achievement_ipc BEGIN "
    "INSERT INTO search_changes (achievement_id) VALUES (NEW.achievement_id); END",
    "CREATE TRIGGER tr_search_ipc_delete AFTER DELETE ON achievement_ipc BEGIN "
    "INSERT INTO search_changes (achievement_id) VALUES (OLD.achievement_id); END",
    f"""CREATE TRIGGER tr_search_changes_prune AFTER INSERT ON search_changes WHEN NEW.seq % {PRUNE_EVERY} = 0 BEGIN
UPDATE search_horizon SET pruned_upto = NEW.seq - keep WHERE id = 1 AND NEW.seq - keep > pruned_upto;
DELETE FROM search_changes WHERE seq <= (SELECT pruned_upto FROM search_horizon WHERE id = 1);
END""",
]
SQLITE_TRIGGERS = ("tr_search_achievement_insert", "tr_search_achievement_update", "tr_search_achievement_delete",
                   "tr_search_ipc_insert", "tr_search_ipc_delete", "tr_search_changes_prune")

XID = "pg_current_xact_id()::text::bigint"
PG = [
    f"""CREATE FUNCTION catalog_search_rows_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- statement triggers: the transition table is named changed_rows, its id column is the first argument
  IF TG_ARGV[0] = 'id' THEN
    INSERT INTO search_changes (xid, achievement_id) SELECT DISTINCT {XID}, id FROM changed_rows;
  ELSE
    INSERT INTO search_changes (xid, achievement_id) SELECT DISTINCT {XID}, achievement_id FROM changed_rows;
  END IF;
  RETURN NULL;
END $$""",
    f"""CREATE FUNCTION catalog_search_row_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO search_changes (xid, achievement_id) VALUES ({XID}, NEW.id);
  RETURN NULL;
END $$""",
    """CREATE TRIGGER tr_search_achievement_insert AFTER INSERT ON achievements
  REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION catalog_search_rows_changed('id')""",
    """CREATE TRIGGER tr_search_achievement_delete AFTER DELETE ON achievements
  REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION catalog_search_rows_changed('id')""",
    f"""CREATE TRIGGER tr_search_achievement_update AFTER UPDATE OF {', '.join(SEARCHED)} ON achievements
  FOR EACH ROW WHEN ({_changed('IS DISTINCT FROM')}) EXECUTE FUNCTION catalog_search_row_changed()""",
    """CREATE TRIGGER tr_search_ipc_insert AFTER INSERT ON achievement_ipc
  REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION catalog_search_rows_changed('achievement_id')""",
    """CREATE TRIGGER tr_search_ipc_delete AFTER DELETE ON achievement_ipc
  REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION catalog_search_rows_changed('achievement_id')""",
    f"""CREATE FUNCTION catalog_search_changes_prune() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  top bigint;
  gone bigint;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM new_rows WHERE seq % {PRUNE_EVERY} = 0) THEN
    RETURN NULL;
  END IF;
  SELECT max(seq) INTO top FROM new_rows;
  WITH d AS (DELETE FROM search_changes WHERE seq <= top - (SELECT keep FROM search_horizon WHERE id = 1)
             RETURNING xid)
  SELECT max(xid) INTO gone FROM d;
  IF gone IS NOT NULL THEN
    UPDATE search_horizon SET pruned_upto = greatest(pruned_upto, gone) WHERE id = 1;
  END IF;
  RETURN NULL;
END $$""",
    """CREATE TRIGGER tr_search_changes_prune AFTER INSERT ON search_changes
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION catalog_search_changes_prune()""",
]
PG_TRIGGERS = (("achievements", "tr_search_achievement_insert"), ("achievements", "tr_search_achievement_delete"),
               ("achievements", "tr_search_achievement_update"), ("achievement_ipc", "tr_search_ipc_insert"),
               ("achievement_ipc", "tr_search_ipc_delete"), ("search_changes", "tr_search_changes_prune"))
PG_FUNCTIONS = ("catalog_search_rows_changed", "catalog_search_row_changed", "catalog_search_changes_prune")


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    if pg:
        op.create_table(
            "search_changes",
            sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=True),
            sa.Column("xid", sa.BigInteger, nullable=False),
            sa.Column("achievement_id", sa.String(64), nullable=False),
        )
        op.create_index("ix_search_changes_xid", "search_changes", ["xid"])
    else:
        # INTEGER PRIMARY KEY: the rowid, max + 1 for each new row.
        op.execute("CREATE TABLE search_changes (seq INTEGER PRIMARY KEY, achievement_id VARCHAR(64) NOT NULL)")
    op.create_table(
        "search_horizon",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("pruned_upto", sa.BigInteger, nullable=False),
        sa.Column("keep", sa.BigInteger, nullable=False),
    )
    op.execute(f"INSERT INTO search_horizon (id, pruned_upto, keep) VALUES (1, 0, {KEEP})")
    for statement in PG if pg else SQLITE:
        op.execute(statement)


def downgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    if pg:
        for table, trigger in PG_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
        for f in PG_FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {f}()")
    else:
        for trigger in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.drop_table("search_horizon")
    op.drop_table("search_changes")
