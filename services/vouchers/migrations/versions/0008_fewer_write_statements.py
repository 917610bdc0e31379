"""The hot path's write runs fewer statements.

Each statement a PL/pgSQL function runs costs an executor start-up and tear-down, whatever it
does; with a dozen rows written per command those fixed costs were most of the server's CPU per
redemption. `vouchers_apply` now:
- walks its arrays with integer loops over the document (plain expressions) instead of a
  `FOR ... IN SELECT * FROM jsonb_to_recordset(...)` query per array;
- checks a voucher's row version (read without a lock), compares-and-sets its chain head and
  locks it in one conditional UPDATE per voucher, instead of a SELECT ... FOR UPDATE and an
  UPDATE;
- inserts all journal entries of the command in one statement.
The document changes with it: `vouchers` (id, version read or null, chain head read or null, new
head or null, in id order) replaces `versions` and `heads`; the hot path posts only to voucher
chains.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

from techbridge_shared.migrations import sibling_revision

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

OVERDRAFT = "VB001"

FUNCTIONS = [
    f"""
    CREATE OR REPLACE FUNCTION vouchers_apply(doc jsonb) RETURNS void LANGUAGE plpgsql AS $$
    DECLARE i integer; item jsonb; rd redemptions; held bigint;
    BEGIN
      -- Vouchers first, in id order (one lock order for every transaction): the version read
      -- without the lock must still be the row's, and the chain head must still be the one read.
      FOR i IN 0 .. jsonb_array_length(doc->'vouchers') - 1 LOOP
        item := doc->'vouchers'->i;
        UPDATE vouchers v SET head_hash = COALESCE(item->>'head', v.head_hash)
         WHERE v.id = item->>'id'
           AND (item->>'version' IS NULL OR v.xmin = (item->>'version')::xid)
           AND (item->>'prev' IS NULL OR v.head_hash = item->>'prev');
        IF NOT FOUND THEN
          RAISE EXCEPTION 'voucher % changed after this command read it', item->>'id' USING ERRCODE = '40001';
        END IF;
      END LOOP;
      IF jsonb_array_length(doc->'new_redemptions') > 0 THEN
        INSERT INTO redemptions SELECT * FROM jsonb_populate_recordset(NULL::redemptions, doc->'new_redemptions');
      END IF;
      FOR i IN 0 .. jsonb_array_length(doc->'redemptions') - 1 LOOP
        rd := jsonb_populate_record(NULL::redemptions, doc->'redemptions'->i);
        UPDATE redemptions r SET state = rd.state, settled_by = rd.settled_by, settled_at = rd.settled_at,
               voided_reason = rd.voided_reason, voided_at = rd.voided_at, paid_at = rd.paid_at,
               payout_ref = rd.payout_ref, clawed_back = rd.clawed_back,
               settle_entry_id = COALESCE(rd.settle_entry_id, r.settle_entry_id),
               payout_batch_id = COALESCE(rd.payout_batch_id, r.payout_batch_id)
         WHERE r.id = rd.id
           AND (doc->'redemption_versions'->>rd.id IS NULL OR r.xmin = (doc->'redemption_versions'->>rd.id)::xid);
        IF NOT FOUND THEN
          RAISE EXCEPTION 'redemption % changed after this command read it', rd.id USING ERRCODE = '40001';
        END IF;
      END LOOP;
      -- In the order posted: a chain's entries follow each other.
      INSERT INTO journal (id, kind, chain_key, programme_id, voucher_id, redemption_id, reverses, currency, memo,
                           created_at, created_by, prev_hash, hash)
        SELECT e.id, e.kind, e.chain_key, e.programme_id, e.voucher_id, e.redemption_id, e.reverses, e.currency,
               e.memo, e.created_at, e.created_by, e.prev_hash, e.hash
        FROM jsonb_populate_recordset(NULL::journal, doc->'journal') WITH ORDINALITY AS e ORDER BY e.ordinality;
      INSERT INTO postings (entry_id, account_id, amount, currency)
        SELECT x.entry_id, x.account_id, x.amount, x.currency
        FROM jsonb_to_recordset(doc->'postings') AS x(entry_id text, account_id text, amount bigint, currency text);
      INSERT INTO outbox (event_id, topic, key, type, payload, created_at)
        SELECT x.value->>'event_id', x.value->>'topic', x.value->>'key', x.value->>'type', x.value->>'payload',
               (x.value->>'created_at')::timestamptz
        FROM jsonb_array_elements(doc->'outbox') WITH ORDINALITY AS x(value, ord) ORDER BY x.ord;
      IF jsonb_typeof(doc->'idempotency') = 'object' THEN
        INSERT INTO idempotency_keys (scope, key, fingerprint, status, body, created_at)
        VALUES (doc->'idempotency'->>'scope', doc->'idempotency'->>'key', doc->'idempotency'->>'fingerprint',
                (doc->'idempotency'->>'status')::integer, doc->'idempotency'->>'body', now());
      END IF;
      -- Legs arrive in account id order. A credit to a hot credit-only account goes to one of
      -- its sub-balances (`shard`); money leaving such an account first folds them into its
      -- row (`fold`), which then guards the overdraft.
      FOR i IN 0 .. jsonb_array_length(doc->'legs') - 1 LOOP
        item := doc->'legs'->i;
        IF item->>'shard' IS NOT NULL THEN
          INSERT INTO account_credits AS c (account_id, shard, amount)
            VALUES (item->>'id', (item->>'shard')::integer, (item->>'delta')::bigint)
            ON CONFLICT (account_id, shard) DO UPDATE SET amount = c.amount + EXCLUDED.amount;
          CONTINUE;
        END IF;
        IF (item->>'fold')::boolean THEN
          PERFORM vouchers_fold_credits(item->>'id');
        END IF;
        UPDATE accounts SET balance = balance + (item->>'delta')::bigint
         WHERE id = item->>'id' AND ((item->>'may_go_negative')::boolean OR balance + (item->>'delta')::bigint >= 0);
        IF NOT FOUND THEN
          SELECT a.balance INTO held FROM accounts a WHERE a.id = item->>'id';
          IF NOT FOUND THEN
            RAISE EXCEPTION 'entry posts to account %, which does not exist', item->>'id';
          END IF;
          RAISE EXCEPTION 'account % holds %, cannot take %', item->>'id', held, -(item->>'delta')::bigint
            USING ERRCODE = '{OVERDRAFT}', DETAIL = json_build_object('account', item->>'id', 'balance', held,
                                                                       'wanted', -(item->>'delta')::bigint)::text;
        END IF;
      END LOOP;
    END $$
    """,
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for sql in FUNCTIONS:
            op.execute(sql)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        earlier = sibling_revision(__file__, "0006_credit_sub_balances.py")
        op.execute(next(sql for sql in earlier.FUNCTIONS if "vouchers_apply" in sql))
