"""The index for bulk payouts covers settled redemptions only.

`ix_redemptions_agency_state (agency_org_id, state, settled_at)` served one query: an agency's
settled, unpaid redemptions. It held every redemption, and while the table's statistics were
stale (a new or fast-growing table) the planner also chose it for the reservation's invoice
lookup (`agency_org_id = ? AND invoice_ref = ? AND state <> 'voided'`), reading every redemption
of the agency to find the invoice's (seen in a benchmark: 186 buffers for one reservation, growing
with the table). The partial `ix_redemptions_settled (agency_org_id, settled_at) WHERE state =
'settled'` serves the payout query (which names the state as a literal, so the planner can prove
the predicate), cannot serve the invoice lookup (so that goes to `ix_redemptions_invoice`), and a
reservation no longer adds an entry to it (only settlement does, and payment leaves it).

Revision ID: 0007
Revises: 0006
"""
from alembic import op
from sqlalchemy import text

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_redemptions_settled", "redemptions", ["agency_org_id", "settled_at"],
                    postgresql_where=text("state = 'settled'"), sqlite_where=text("state = 'settled'"))
    op.drop_index("ix_redemptions_agency_state", "redemptions")


def downgrade() -> None:
    op.create_index("ix_redemptions_agency_state", "redemptions", ["agency_org_id", "state", "settled_at"])
    op.drop_index("ix_redemptions_settled", "redemptions")
