"""Sub-balances for hot credit-only accounts: an agency's payable balance.

Every settlement credits the agency's payable account, so with the balance in one row every
settlement of one agency waited for the previous one to commit (the row stays locked until the
commit's WAL flush). Now a settlement on the PostgreSQL hot path adds its credit to one of a few
sub-balance rows of that account (`account_credits`, one per `shard`, chosen at random per
transaction), and concurrent settlements rarely meet. The account's balance is its row's balance
plus its sub-balances; both are never negative (CHECK constraints). Money leaving the account
(payout, claw-back, on every path) first folds the sub-balances into the row under their locks
(`vouchers_fold_credits`, or `Repository.fold_credits`), and the row's conditional update guards
the overdraft exactly as before. Every read of a balance and the ledger check add the
sub-balances; SQLite never writes them (its writers are serialised anyway).

Revision ID: 0006
Revises: 0005
"""

from alembic import op
from sqlalchemy import BigInteger, CheckConstraint, Column, ForeignKey, Integer, MetaData, String, Table

from techbridge_shared.migrations import sibling_revision

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

OVERDRAFT = "VB001"

FUNCTIONS = [
    # Move an account's sub-balances into its row: lock them in shard order, zero exactly the
    # rows locked (a sub-balance created meanwhile stays, and still counts) and add what they held.
    """
    CREATE OR REPLACE FUNCTION vouchers_fold_credits(p_account text) RETURNS bigint LANGUAGE plpgsql AS $$
    DECLARE shards integer[]; moved bigint;
    BEGIN
      SELECT array_agg(s.shard), sum(s.amount) INTO shards, moved
        FROM (SELECT c.shard, c.amount FROM account_credits c WHERE c.account_id = p_account AND c.amount > 0
              ORDER BY c.shard FOR UPDATE) s;
      IF moved IS NULL THEN RETURN 0; END IF;
      UPDATE account_credits SET amount = 0 WHERE account_id = p_account AND shard = ANY(shards);
      UPDATE accounts SET balance = balance + moved WHERE id = p_account;
      RETURN moved;
    END $$
    """,
    f"""
    CREATE OR REPLACE FUNCTION vouchers_apply(doc jsonb) RETURNS void LANGUAGE plpgsql AS $$
    DECLARE n integer; e jsonb; h record; rd redemptions; leg record; held bigint; ver record;
    BEGIN
      FOR ver IN SELECT * FROM jsonb_to_recordset(doc->'versions') AS x(id text, version text) ORDER BY x.id LOOP
        PERFORM 1 FROM vouchers WHERE id = ver.id AND xmin = ver.version::xid FOR UPDATE;
        IF NOT FOUND THEN
          RAISE EXCEPTION 'voucher % changed after this command read it', ver.id USING ERRCODE = '40001';
        END IF;
      END LOOP;
      IF jsonb_array_length(doc->'new_redemptions') > 0 THEN
        INSERT INTO redemptions SELECT * FROM jsonb_populate_recordset(NULL::redemptions, doc->'new_redemptions');
      END IF;
      -- Row by row by primary key: a join against a set-returning function is planned for 100
      -- rows and would scan the whole table.
      FOR rd IN SELECT * FROM jsonb_populate_recordset(NULL::redemptions, doc->'redemptions') LOOP
        UPDATE redemptions r SET state = rd.state, settled_by = rd.settled_by, settled_at = rd.settled_at,
               voided_reason = rd.voided_reason, voided_at = rd.voided_at, paid_at = rd.paid_at,
               payout_ref = rd.payout_ref, clawed_back = rd.clawed_back,
               settle_entry_id = COALESCE(rd.settle_entry_id, r.settle_entry_id),
               payout_batch_id = COALESCE(rd.payout_batch_id, r.payout_batch_id)
         WHERE r.id = rd.id
           AND (doc->'redemption_versions'->>rd.id IS NULL OR r.xmin = (doc->'redemption_versions'->>rd.id)::xid);
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n <> 1 THEN
          RAISE EXCEPTION 'redemption % changed after this command read it', rd.id USING ERRCODE = '40001';
        END IF;
      END LOOP;
      FOR e IN SELECT value FROM jsonb_array_elements(doc->'journal') LOOP
        INSERT INTO journal (id, kind, chain_key, programme_id, voucher_id, redemption_id, reverses, currency, memo,
                             created_at, created_by, prev_hash, hash)
        VALUES (e->>'id', e->>'kind', e->>'chain_key', e->>'programme_id', e->>'voucher_id', e->>'redemption_id',
                e->>'reverses', e->>'currency', e->>'memo', (e->>'created_at')::timestamptz, e->>'created_by',
                e->>'prev_hash', e->>'hash');
      END LOOP;
      INSERT INTO postings (entry_id, account_id, amount, currency)
        SELECT x.entry_id, x.account_id, x.amount, x.currency
        FROM jsonb_to_recordset(doc->'postings') AS x(entry_id text, account_id text, amount bigint, currency text);
      FOR h IN SELECT * FROM jsonb_to_recordset(doc->'heads') AS x(owner text, id text, prev text, head text) LOOP
        IF h.owner = 'voucher' THEN
          UPDATE vouchers SET head_hash = h.head WHERE id = h.id AND head_hash = h.prev;
        ELSE
          UPDATE programmes SET head_hash = h.head WHERE id = h.id AND head_hash = h.prev;
        END IF;
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n <> 1 THEN
          RAISE EXCEPTION 'the hash chain of % moved while this transaction held its lock', h.id
            USING ERRCODE = '40001';
        END IF;
      END LOOP;
      INSERT INTO outbox (event_id, topic, key, type, payload, created_at)
        SELECT x.value->>'event_id', x.value->>'topic', x.value->>'key', x.value->>'type', x.value->>'payload',
               (x.value->>'created_at')::timestamptz
        FROM jsonb_array_elements(doc->'outbox') WITH ORDINALITY AS x(value, ord) ORDER BY x.ord;
      IF doc->'idempotency' IS NOT NULL AND jsonb_typeof(doc->'idempotency') = 'object' THEN
        INSERT INTO idempotency_keys (scope, key, fingerprint, status, body, created_at)
        VALUES (doc->'idempotency'->>'scope', doc->'idempotency'->>'key', doc->'idempotency'->>'fingerprint',
                (doc->'idempotency'->>'status')::integer, doc->'idempotency'->>'body', now());
      END IF;
      -- Legs arrive in account id order (one lock order for every transaction). A credit to a
      -- hot credit-only account goes to one of its sub-balances (`shard`), so concurrent
      -- settlements of one agency do not queue on one row; money leaving such an account first
      -- folds its sub-balances into the account row (`fold`), which then guards the overdraft.
      FOR leg IN SELECT * FROM jsonb_to_recordset(doc->'legs')
                 AS d(id text, delta bigint, may_go_negative boolean, shard integer, fold boolean)
      LOOP
        IF leg.shard IS NOT NULL AND leg.delta > 0 THEN
          INSERT INTO account_credits AS c (account_id, shard, amount) VALUES (leg.id, leg.shard, leg.delta)
            ON CONFLICT (account_id, shard) DO UPDATE SET amount = c.amount + EXCLUDED.amount;
          CONTINUE;
        END IF;
        IF leg.fold THEN
          PERFORM vouchers_fold_credits(leg.id);
        END IF;
        UPDATE accounts SET balance = balance + leg.delta
         WHERE id = leg.id AND (leg.may_go_negative OR balance + leg.delta >= 0);
        IF NOT FOUND THEN
          SELECT a.balance INTO held FROM accounts a WHERE a.id = leg.id;
          IF NOT FOUND THEN
            RAISE EXCEPTION 'entry posts to account %, which does not exist', leg.id;
          END IF;
          RAISE EXCEPTION 'account % holds %, cannot take %', leg.id, held, -leg.delta
            USING ERRCODE = '{OVERDRAFT}', DETAIL = json_build_object('account', leg.id, 'balance', held,
                                                                       'wanted', -leg.delta)::text;
        END IF;
      END LOOP;
    END $$
    """,
]


def upgrade() -> None:
    md = MetaData()
    Table("accounts", md, Column("id", String(200), primary_key=True))
    Table(
        "account_credits", md,
        Column("account_id", String(200), ForeignKey("accounts.id"), primary_key=True),
        Column("shard", Integer, primary_key=True, autoincrement=False),
        Column("amount", BigInteger, nullable=False),
        CheckConstraint("amount >= 0", name="ck_account_credits_not_negative"),
    )
    md.tables["account_credits"].create(op.get_bind())
    if op.get_bind().dialect.name == "postgresql":
        for sql in FUNCTIONS:
            op.execute(sql)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # Fold every sub-balance back into its row first: 0005 knows only the row.
        op.execute("SELECT vouchers_fold_credits(a) FROM (SELECT DISTINCT account_id a FROM account_credits) x")
        op.execute("DROP FUNCTION IF EXISTS vouchers_fold_credits(text)")
        earlier = sibling_revision(__file__, "0005_lean_redemption_writes.py")
        op.execute(next(sql for sql in earlier.FUNCTIONS if "vouchers_apply" in sql))
    op.drop_table("account_credits")
