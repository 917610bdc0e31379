"""Group commit for the hot path's unlocked writes.

`vouchers_apply_batch(docs)` applies several commands' write documents in one transaction, each
in a subtransaction of its own: a document that fails (a row version or chain head changed since
its command read it, an overdraft, a key answered meanwhile) writes nothing and is answered with
its error, while the others commit together. One commit, one round trip and one statement for a
batch instead of one each, and fewer backends writing at once.

A batch holds the rows it wrote until it commits, so `vouchers_apply` now credits a hot account's
sub-balance that no other transaction holds (SKIP LOCKED) instead of one drawn at random, which
concurrent batches kept waiting for; the drawn one is still taken when every sub-balance is held
or none exists yet.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

from techbridge_shared.migrations import sibling_revision

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_EARLIER = sibling_revision(__file__, "0008_fewer_write_statements.py")
_APPLY_0008 = next(sql for sql in _EARLIER.FUNCTIONS if "vouchers_apply(" in sql)
_CREDIT_DRAWN = """
        IF item->>'shard' IS NOT NULL THEN
          INSERT INTO account_credits AS c (account_id, shard, amount)"""
_CREDIT_FREE = """
        IF item->>'shard' IS NOT NULL THEN
          UPDATE account_credits c SET amount = c.amount + (item->>'delta')::bigint
           WHERE (c.account_id, c.shard) = (SELECT f.account_id, f.shard FROM account_credits f
                                              WHERE f.account_id = item->>'id' LIMIT 1 FOR UPDATE SKIP LOCKED);
          CONTINUE WHEN FOUND;
          INSERT INTO account_credits AS c (account_id, shard, amount)"""
assert _APPLY_0008.count(_CREDIT_DRAWN) == 1

FUNCTIONS = [
    _APPLY_0008.replace(_CREDIT_DRAWN, _CREDIT_FREE),
    """
    CREATE OR REPLACE FUNCTION vouchers_apply_batch(docs jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
    DECLARE i integer; outcomes jsonb := '[]'; state text; message text; detail text; constraint_name text;
    BEGIN
      FOR i IN 0 .. jsonb_array_length(docs) - 1 LOOP
        BEGIN
          PERFORM vouchers_apply(docs->i);
          outcomes := outcomes || 'null'::jsonb;
        EXCEPTION WHEN OTHERS THEN
          GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL,
                                  constraint_name = CONSTRAINT_NAME;
          outcomes := outcomes || jsonb_build_array(jsonb_build_object(
            'sqlstate', state, 'message', message, 'detail', NULLIF(detail, ''),
            'constraint_name', NULLIF(constraint_name, '')));
        END;
      END LOOP;
      RETURN outcomes;
    END $$
    """,
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for sql in FUNCTIONS:
            op.execute(sql)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS vouchers_apply_batch(jsonb)")
        op.execute(_APPLY_0008)
