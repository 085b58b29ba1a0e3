"""scale out: leases of cap slots and funds to one process (docs/scale-out.md)

Revision ID: 0010
Revises: 0005
Create Date: 2026-12-02 14:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("holder", sa.Text(), nullable=False),
        sa.Column("contract_id", sa.Text(), nullable=False),
        sa.Column("buyer_id", sa.Text(), nullable=False),
        sa.Column("day_key", sa.Text(), nullable=False),
        sa.Column("week_key", sa.Text(), nullable=False),
        sa.Column("month_key", sa.Text(), nullable=False),
        sa.Column("slots", sa.BigInteger(), nullable=False),
        sa.Column("cents", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("ended_at", sa.BigInteger(), nullable=True),
        sa.Column("used_slots", sa.BigInteger(), nullable=True),
        sa.Column("used_cents", sa.BigInteger(), nullable=True),
        sa.Column("stranded", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "leases_active",
        "leases",
        ["expires_at"],
        unique=False,
        sqlite_where=sa.text("state = 'active'"),
        postgresql_where=sa.text("state = 'active'"),
    )
    op.create_index("leases_contract", "leases", ["contract_id", "created_at"], unique=False)
    with op.batch_alter_table("reservations") as batch:
        batch.add_column(sa.Column("lease_id", sa.Text(), nullable=True))
    op.create_index(
        "reservations_lease",
        "reservations",
        ["lease_id"],
        unique=False,
        sqlite_where=sa.text("lease_id IS NOT NULL"),
        postgresql_where=sa.text("lease_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("reservations_lease", table_name="reservations")
    with op.batch_alter_table("reservations") as batch:
        batch.drop_column("lease_id")
    op.drop_index("leases_contract", table_name="leases")
    op.drop_index("leases_active", table_name="leases")
    op.drop_table("leases")
