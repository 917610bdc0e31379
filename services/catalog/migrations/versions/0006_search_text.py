"""PostgreSQL: rank text hits on a narrow table (id, search_vector) instead of the wide rows.

A text search ranks every hit with `ts_rank`, which needs the hit's tsvector; read from
`achievements`, that is one visit of a wide row (with the JSON content ~1.9 KB; a 390 MB
heap at 100,000 listings once each row was updated) per hit, thousands of heap pages for a
common word, more than the shared buffers hold. `achievement_search` holds just the id and
the same tsvector (~650 bytes a row), with the GIN index that was on `achievements`: the match
and the ranking read a sixth of the pages and stay in the buffers.

It is kept by triggers in the writer's transaction, so it is never behind the achievement
rows any snapshot sees: an INSERT copies its rows' vectors (one statement per INSERT, from
the transition table), an UPDATE that changes a vector copies it (per row, only when it
changed: publication and other status changes do not touch it), a DELETE removes the rows.
The GIN index moves rather than being added, so a write maintains one full-text index as
before, plus one narrow row and its primary key entry.

SQLite is unchanged (its FTS5 table is already narrow).

Revision ID: 0006
Revises: 0005
"""
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

PG = [
    """CREATE TABLE achievement_search (
  id varchar(64) PRIMARY KEY,
  search_vector tsvector NOT NULL
)""",
    """CREATE FUNCTION catalog_search_text_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO achievement_search (id, search_vector)
  SELECT id, search_vector FROM new_rows WHERE search_vector IS NOT NULL;
  RETURN NULL;
END $$""",
    """CREATE FUNCTION catalog_search_text_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.search_vector IS NULL THEN
    DELETE FROM achievement_search WHERE id = NEW.id;
  ELSE
    INSERT INTO achievement_search (id, search_vector) VALUES (NEW.id, NEW.search_vector)
    ON CONFLICT (id) DO UPDATE SET search_vector = EXCLUDED.search_vector;
  END IF;
  RETURN NULL;
END $$""",
    """CREATE FUNCTION catalog_search_text_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM achievement_search WHERE id IN (SELECT id FROM old_rows);
  RETURN NULL;
END $$""",
    """CREATE TRIGGER tr_search_text_insert AFTER INSERT ON achievements
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION catalog_search_text_inserted()""",
    """CREATE TRIGGER tr_search_text_update AFTER UPDATE OF search_vector ON achievements
  FOR EACH ROW WHEN (OLD.search_vector IS DISTINCT FROM NEW.search_vector)
  EXECUTE FUNCTION catalog_search_text_updated()""",
    """CREATE TRIGGER tr_search_text_delete AFTER DELETE ON achievements
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION catalog_search_text_deleted()""",
    # What is there already, then the index (built once rather than entry by entry).
    """INSERT INTO achievement_search (id, search_vector)
  SELECT id, search_vector FROM achievements WHERE search_vector IS NOT NULL""",
    "CREATE INDEX ix_achievement_search_vector ON achievement_search USING GIN (search_vector)",
    "ANALYZE achievement_search",  # plans from the first search on, not after autovacuum's turn
    "DROP INDEX IF EXISTS ix_achievements_search",
]
PG_TRIGGERS = ("tr_search_text_insert", "tr_search_text_update", "tr_search_text_delete")
PG_FUNCTIONS = ("catalog_search_text_inserted", "catalog_search_text_updated", "catalog_search_text_deleted")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in PG:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE INDEX IF NOT EXISTS ix_achievements_search ON achievements USING GIN (search_vector)")
    for trigger in PG_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON achievements")
    for f in PG_FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {f}()")
    op.execute("DROP TABLE IF EXISTS achievement_search")
