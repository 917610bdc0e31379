"""Payout batches (an agency's settled redemptions paid out in one operation), and on PostgreSQL
the server-side functions of the redemption hot path.

The functions take no decisions: they lock and read what a command decides on, and write what
the domain decided (journal, postings, chain heads, balances, redemptions, outbox, idempotency
record) in one round trip each. The rules stay in `techbridge_vouchers.domain`; the database
stays the last guard (conditional balance moves, CHECK constraints, chain-head compare-and-set).

Revision ID: 0003
Revises: 0002
"""
from alembic import op
from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, Text

from techbridge_vouchers.store.tables import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

#: SQLSTATE raised when a movement would overdraw an account (mapped to insufficient_balance).
OVERDRAFT = "VB001"

FUNCTIONS = [
    # The stored response of an Idempotency-Key, if any (the caller holds the key's advisory lock,
    # and this statement's snapshot is taken after it was granted).
    """
    CREATE OR REPLACE FUNCTION vouchers_stored_response(p_scope text, p_key text) RETURNS json
    LANGUAGE sql STABLE AS $$
      SELECT json_build_object('fingerprint', k.fingerprint, 'status', k.status, 'body', k.body)
      FROM idempotency_keys k WHERE k.scope = p_scope AND k.key = p_key
    $$
    """,
    # The stored response of the Idempotency-Key if there is one; else lock the voucher, then read
    # (after the lock) what a reservation decides on.
    """
    CREATE OR REPLACE FUNCTION vouchers_reservation_context(p_voucher text, p_agency text, p_invoice text,
                                                            p_transfer text, p_available_account text,
                                                            p_scope text, p_key text)
    RETURNS json LANGUAGE plpgsql AS $$
    DECLARE v vouchers; result json;
    BEGIN
      IF p_key IS NOT NULL THEN
        result := vouchers_stored_response(p_scope, p_key);
        IF result IS NOT NULL THEN RETURN json_build_object('stored', result); END IF;
      END IF;
      SELECT * INTO v FROM vouchers WHERE id = p_voucher FOR UPDATE;
      IF NOT FOUND THEN RETURN NULL; END IF;
      SELECT json_build_object(
        'voucher', row_to_json(v),
        'enrolment', (SELECT row_to_json(e) FROM enrolments e
                      WHERE e.programme_id = v.programme_id AND e.agency_org_id = p_agency),
        'available', (SELECT a.balance FROM accounts a WHERE a.id = p_available_account),
        'invoice', (SELECT json_agg(json_build_object('amount', r.amount, 'clawed_back', r.clawed_back,
                                                      'invoice_amount', r.invoice_amount))
                    FROM redemptions r
                    WHERE r.agency_org_id = p_agency AND r.invoice_ref = p_invoice AND r.state <> 'voided'),
        'transfer', (SELECT row_to_json(t) FROM transfers t WHERE t.id = p_transfer)) INTO result;
      RETURN result;
    END $$
    """,
    # The stored response of the Idempotency-Key if there is one; else lock the voucher of a
    # redemption, then read the redemption again under that lock.
    """
    CREATE OR REPLACE FUNCTION vouchers_lock_redemption(p_redemption text, p_scope text, p_key text)
    RETURNS json LANGUAGE plpgsql AS $$
    DECLARE vid text; v vouchers; result json;
    BEGIN
      IF p_key IS NOT NULL THEN
        result := vouchers_stored_response(p_scope, p_key);
        IF result IS NOT NULL THEN RETURN json_build_object('stored', result); END IF;
      END IF;
      SELECT r.voucher_id INTO vid FROM redemptions r WHERE r.id = p_redemption;
      IF NOT FOUND THEN RETURN NULL; END IF;
      SELECT * INTO v FROM vouchers WHERE id = vid FOR UPDATE;
      SELECT json_build_object('voucher', row_to_json(v),
                               'redemption', (SELECT row_to_json(r) FROM redemptions r WHERE r.id = p_redemption))
        INTO result;
      RETURN result;
    END $$
    """,
    # Write what the unit of work decided, in order: redemptions, journal, postings, chain heads
    # (compare-and-set against the head read under the lock), outbox, idempotency record, and
    # last the balances (so shared accounts stay locked only until the commit). A leg that would
    # take an account below zero (other than a funding account) refuses the whole write.
    f"""
    CREATE OR REPLACE FUNCTION vouchers_apply(doc jsonb) RETURNS void LANGUAGE plpgsql AS $$
    DECLARE n integer; e jsonb; h record; rd redemptions; leg record; held bigint;
    BEGIN
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
         WHERE r.id = rd.id;
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
      -- Legs arrive in account id order (one lock order for every transaction).
      FOR leg IN SELECT * FROM jsonb_to_recordset(doc->'legs') AS d(id text, delta bigint, may_go_negative boolean)
      LOOP
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

FUNCTION_NAMES = ("vouchers_reservation_context(text, text, text, text, text, text, text)",
                  "vouchers_lock_redemption(text, text, text)", "vouchers_apply(jsonb)",
                  "vouchers_stored_response(text, text)")


def upgrade() -> None:
    md = MetaData()
    Table(
        "payout_batches", md,
        Column("id", String(36), primary_key=True),
        Column("agency_org_id", String(64), nullable=False, index=True),
        Column("programme_id", String(36)),  # the filter asked for, if any
        Column("settled_before", UTCDateTime),  # the filter asked for, if any
        Column("reference", String(200), nullable=False),
        Column("count", Integer, nullable=False),
        Column("totals", JSON, nullable=False),  # [{programme_id, currency, amount, count}]
        Column("created_by", String(200), nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Column("note", Text, nullable=False, default=""),
    )
    md.create_all(op.get_bind())
    op.add_column("redemptions", Column("payout_batch_id", String(36), nullable=True))
    op.create_index("ix_redemptions_payout_batch", "redemptions", ["payout_batch_id"])
    op.create_index("ix_redemptions_agency_state", "redemptions", ["agency_org_id", "state", "settled_at"])
    if op.get_bind().dialect.name == "postgresql":
        for sql in FUNCTIONS:
            op.execute(sql)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in FUNCTION_NAMES:
            op.execute(f"DROP FUNCTION IF EXISTS {name}")
    op.drop_index("ix_redemptions_agency_state", "redemptions")
    op.drop_index("ix_redemptions_payout_batch", "redemptions")
    with op.batch_alter_table("redemptions") as batch:
        batch.drop_column("payout_batch_id")
    op.drop_table("payout_batches")

