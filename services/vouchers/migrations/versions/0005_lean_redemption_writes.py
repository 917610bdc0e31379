"""Cheaper redemption writes: fewer index entries per reservation and settlement, and hot-path
reads that can run without holding a lock (checked again when the write is applied).

Indexes. Every reservation inserts a redemption row, a journal entry and two postings, and every
settlement does it again (the settlement changes the redemption's state, so its row gets new
entries in every index of `redemptions`). Entries no query needs are dropped:
- `ix_redemptions_agency_org_id`: a prefix of `ix_redemptions_invoice` and `ix_redemptions_agency_state`;
- `ix_journal_chain_key`: no query looks entries up by chain (the check replays in `seq` order);
- `ix_redemptions_transfer_id` and `ix_redemptions_payout_batch` become partial (only rows that
  have a transfer / a batch), and `ix_journal_redemption_id` becomes `ix_journal_payout_redemption`
  over payout entries only (the one query by redemption looks up payout entries).

Functions (PostgreSQL). `vouchers_reservation_context` and `vouchers_lock_redemption` gain a
`p_lock` argument: with it they lock the voucher as before; without it they only read, and return
each row's version (`xmin`), which `vouchers_apply` compares before it writes anything (a row
changed since the read refuses the whole write with SQLSTATE 40001, and the command runs again
under the lock). The Idempotency-Key lookup is inlined (a SQL function called from PL/pgSQL was
planned again in every transaction).

Revision ID: 0005
Revises: 0004
"""

from alembic import op
from sqlalchemy import text

from techbridge_shared.migrations import sibling_revision

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

OVERDRAFT = "VB001"

STORED = """(SELECT json_build_object('fingerprint', k.fingerprint, 'status', k.status, 'body', k.body)
                     FROM idempotency_keys k WHERE k.scope = p_scope AND k.key = p_key)"""

FUNCTIONS = [
    f"""
    CREATE OR REPLACE FUNCTION vouchers_reservation_context(p_voucher text, p_agency text, p_invoice text,
                                                            p_transfer text, p_available_account text,
                                                            p_scope text, p_key text, p_lock boolean)
    RETURNS json LANGUAGE plpgsql AS $$
    DECLARE v json; pid text; version text; result json;
    BEGIN
      IF p_key IS NOT NULL THEN
        result := {STORED};
        IF result IS NOT NULL THEN RETURN json_build_object('stored', result); END IF;
      END IF;
      IF p_lock THEN
        SELECT row_to_json(x), x.programme_id, x.xmin::text INTO v, pid, version
          FROM vouchers x WHERE x.id = p_voucher FOR UPDATE;
      ELSE
        SELECT row_to_json(x), x.programme_id, x.xmin::text INTO v, pid, version
          FROM vouchers x WHERE x.id = p_voucher;
      END IF;
      IF NOT FOUND THEN RETURN NULL; END IF;
      SELECT json_build_object(
        'voucher', v, 'version', version,
        'enrolment', (SELECT row_to_json(e) FROM enrolments e
                      WHERE e.programme_id = pid AND e.agency_org_id = p_agency),
        'available', (SELECT a.balance FROM accounts a WHERE a.id = p_available_account),
        'invoice', (SELECT json_agg(json_build_object('amount', r.amount, 'clawed_back', r.clawed_back,
                                                      'invoice_amount', r.invoice_amount))
                    FROM redemptions r
                    WHERE r.agency_org_id = p_agency AND r.invoice_ref = p_invoice AND r.state <> 'voided'),
        'transfer', (SELECT row_to_json(t) FROM transfers t WHERE t.id = p_transfer)) INTO result;
      RETURN result;
    END $$
    """,
    f"""
    CREATE OR REPLACE FUNCTION vouchers_lock_redemption(p_redemption text, p_scope text, p_key text,
                                                        p_lock boolean)
    RETURNS json LANGUAGE plpgsql AS $$
    DECLARE vid text; result json;
    BEGIN
      IF p_key IS NOT NULL THEN
        result := {STORED};
        IF result IS NOT NULL THEN RETURN json_build_object('stored', result); END IF;
      END IF;
      IF p_lock THEN
        SELECT r.voucher_id INTO vid FROM redemptions r WHERE r.id = p_redemption;
        IF NOT FOUND THEN RETURN NULL; END IF;
        PERFORM 1 FROM vouchers WHERE id = vid FOR UPDATE;
      END IF;
      -- One statement, one snapshot: the redemption and its voucher as they were together
      -- (read again after the lock, if one was taken).
      SELECT json_build_object('voucher', row_to_json(v), 'version', v.xmin::text,
                               'redemption', row_to_json(r), 'redemption_version', r.xmin::text)
        INTO result
        FROM redemptions r JOIN vouchers v ON v.id = r.voucher_id WHERE r.id = p_redemption;
      RETURN result;
    END $$
    """,
    # As in 0003, plus first: the rows the decision was read from must be the rows still there
    # (`versions`: vouchers by xmin, locked in id order; redemptions by xmin in their update).
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

#: The 0003 read functions, replaced by the versions above (which take `p_lock`).
REPLACED = ("vouchers_reservation_context(text, text, text, text, text, text, text)",
            "vouchers_lock_redemption(text, text, text)")
ADDED = ("vouchers_reservation_context(text, text, text, text, text, text, text, boolean)",
         "vouchers_lock_redemption(text, text, text, boolean)")


def upgrade() -> None:
    op.drop_index("ix_redemptions_agency_org_id", "redemptions")
    op.drop_index("ix_redemptions_transfer_id", "redemptions")
    op.create_index("ix_redemptions_transfer_id", "redemptions", ["transfer_id"],
                    postgresql_where=text("transfer_id IS NOT NULL"), sqlite_where=text("transfer_id IS NOT NULL"))
    op.drop_index("ix_redemptions_payout_batch", "redemptions")
    op.create_index("ix_redemptions_payout_batch", "redemptions", ["payout_batch_id"],
                    postgresql_where=text("payout_batch_id IS NOT NULL"),
                    sqlite_where=text("payout_batch_id IS NOT NULL"))
    op.drop_index("ix_journal_chain_key", "journal")
    op.drop_index("ix_journal_redemption_id", "journal")
    op.create_index("ix_journal_payout_redemption", "journal", ["redemption_id"],
                    postgresql_where=text("kind = 'payout'"), sqlite_where=text("kind = 'payout'"))
    if op.get_bind().dialect.name == "postgresql":
        for name in REPLACED:
            op.execute(f"DROP FUNCTION IF EXISTS {name}")
        for sql in FUNCTIONS:
            op.execute(sql)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in ADDED:
            op.execute(f"DROP FUNCTION IF EXISTS {name}")
        # The 0003 read functions and vouchers_apply.
        for sql in sibling_revision(__file__, "0003_hot_path_and_payout_batches.py").FUNCTIONS:
            op.execute(sql)
    op.drop_index("ix_journal_payout_redemption", "journal")
    op.create_index("ix_journal_redemption_id", "journal", ["redemption_id"])
    op.create_index("ix_journal_chain_key", "journal", ["chain_key"])
    op.drop_index("ix_redemptions_payout_batch", "redemptions")
    op.create_index("ix_redemptions_payout_batch", "redemptions", ["payout_batch_id"])
    op.drop_index("ix_redemptions_transfer_id", "redemptions")
    op.create_index("ix_redemptions_transfer_id", "redemptions", ["transfer_id"])
    op.create_index("ix_redemptions_agency_org_id", "redemptions", ["agency_org_id"])
