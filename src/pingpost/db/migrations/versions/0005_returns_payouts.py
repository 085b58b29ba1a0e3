"""returns, events, payouts and statements indexes

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "returns",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("sale_id", sa.Text(), nullable=False),
        sa.Column("offer_id", sa.Text(), nullable=False),
        sa.Column("campaign_id", sa.Text(), nullable=False),
        sa.Column("partner_id", sa.Text(), nullable=False),
        sa.Column("contract_id", sa.Text(), nullable=False),
        sa.Column("buyer_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("clawback_cents", sa.BigInteger(), nullable=True),
        sa.Column("sale_month", sa.Text(), nullable=False),
        sa.Column("opened_by", sa.Text(), nullable=False),
        sa.Column("transaction_id", sa.Text(), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("decided_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("returns", schema=None) as batch_op:
        batch_op.create_index(
            "returns_open_per_sale",
            ["sale_id"],
            unique=True,
            sqlite_where=sa.text("status IN ('pending','approved')"),
            postgresql_where=sa.text("status IN ('pending','approved')"),
        )
        batch_op.create_index("returns_sale", ["sale_id"], unique=False)
        batch_op.create_index("returns_contract_month", ["contract_id", "sale_month"], unique=False)
        batch_op.create_index("returns_buyer", ["buyer_id", "id"], unique=False)
        batch_op.create_index("returns_partner", ["partner_id", "id"], unique=False)
        batch_op.create_index("returns_status", ["status", "id"], unique=False)

    op.create_table(
        "events",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("events_type", ["type", "id"], unique=False)

    with op.batch_alter_table("sales", schema=None) as batch_op:
        batch_op.create_index("sales_contract_time", ["contract_id", "created_at"], unique=False)
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.create_index("ledger_entries_account_time", ["account", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_index("ledger_entries_account_time")
    with op.batch_alter_table("sales", schema=None) as batch_op:
        batch_op.drop_index("sales_contract_time")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("events_type")
    op.drop_table("events")
    with op.batch_alter_table("returns", schema=None) as batch_op:
        batch_op.drop_index("returns_status")
        batch_op.drop_index("returns_partner")
        batch_op.drop_index("returns_buyer")
        batch_op.drop_index("returns_contract_month")
        batch_op.drop_index("returns_sale")
        batch_op.drop_index("returns_open_per_sale")
    op.drop_table("returns")
