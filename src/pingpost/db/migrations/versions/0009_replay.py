"""what-if replay: the inputs a replay needs that the waterfall does not hold, and replay jobs

Revision ID: 0009
Revises: 0005
Create Date: 2026-12-02 14:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # NULL for most pings (fixed prices, no partner minimum): docs/replay.md, What each ping keeps.
    op.add_column("pings", sa.Column("replay", sa.Text(), nullable=True))
    # A replay reads each batch's deliveries and sales by ping (without these, a scan a batch).
    op.create_index("deliveries_ping", "deliveries", ["ping_id"])
    op.create_index("sales_ping", "sales", ["ping_id"])
    op.create_table(
        "replay_jobs",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("done", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column("total", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("replay_jobs")
    op.drop_index("sales_ping", table_name="sales")
    op.drop_index("deliveries_ping", table_name="deliveries")
    op.drop_column("pings", "replay")
