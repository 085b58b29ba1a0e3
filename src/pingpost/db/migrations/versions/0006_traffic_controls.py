"""traffic controls: ping sources, duplicate-ping keys, spend caps, auto-pause, suppression lists

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 14:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ZERO = sa.text("0")
_EMPTY = sa.text("''")


def upgrade() -> None:
    with op.batch_alter_table("pings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("subs", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("dup_key", sa.Text(), nullable=True))
        batch_op.create_index(
            "pings_dup",
            ["dup_key", "received_at"],
            unique=False,
            sqlite_where=sa.text("dup_key IS NOT NULL"),
            postgresql_where=sa.text("dup_key IS NOT NULL"),
        )
    with op.batch_alter_table("contract_usage", schema=None) as batch_op:
        for name in ("spend_daily_cap_cents", "spend_weekly_cap_cents", "spend_monthly_cap_cents"):
            batch_op.add_column(sa.Column(name, sa.BigInteger(), nullable=True))
        for name in ("day_spent_cents", "week_spent_cents", "month_spent_cents"):
            batch_op.add_column(sa.Column(name, sa.BigInteger(), nullable=False, server_default=_ZERO))
        batch_op.add_column(sa.Column("consecutive_failures", sa.Integer(), nullable=False, server_default=_ZERO))
    with op.batch_alter_table("buyer_funds", schema=None) as batch_op:
        for name in ("spend_daily_cap_cents", "spend_weekly_cap_cents", "spend_monthly_cap_cents"):
            batch_op.add_column(sa.Column(name, sa.BigInteger(), nullable=True))
        for name in ("spend_day_key", "spend_week_key", "spend_month_key"):
            batch_op.add_column(sa.Column(name, sa.Text(), nullable=False, server_default=_EMPTY))
        for name in ("day_spent_cents", "week_spent_cents", "month_spent_cents"):
            batch_op.add_column(sa.Column(name, sa.BigInteger(), nullable=False, server_default=_ZERO))
        batch_op.add_column(sa.Column("low_balance_cents", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("low_balance_alerted", sa.Integer(), nullable=False, server_default=_ZERO))
    with op.batch_alter_table("reservations", schema=None) as batch_op:
        for name in ("buyer_day_key", "buyer_week_key", "buyer_month_key"):
            batch_op.add_column(sa.Column(name, sa.Text(), nullable=True))
    with op.batch_alter_table("report_counters", schema=None) as batch_op:
        batch_op.add_column(sa.Column("duplicate_pings", sa.BigInteger(), nullable=False, server_default=_ZERO))
    op.create_table(
        "source_counters",
        sa.Column("day", sa.Text(), nullable=False),
        sa.Column("offer_id", sa.Text(), nullable=False),
        sa.Column("campaign_id", sa.Text(), nullable=False),
        sa.Column("partner_id", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("pings", sa.BigInteger(), nullable=False, server_default=_ZERO),
        sa.Column("bids", sa.BigInteger(), nullable=False, server_default=_ZERO),
        sa.Column("wins", sa.BigInteger(), nullable=False, server_default=_ZERO),
        sa.Column("duplicate_pings", sa.BigInteger(), nullable=False, server_default=_ZERO),
        sa.PrimaryKeyConstraint("day", "campaign_id", "source"),
    )
    op.create_table(
        "suppression_lists",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("buyer_id", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "suppression_entries",
        sa.Column("list_id", sa.Text(), nullable=False),
        sa.Column("hash_hmac", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("list_id", "hash_hmac"),
    )
    with op.batch_alter_table("suppression_entries", schema=None) as batch_op:
        batch_op.create_index("suppression_entries_hash", ["hash_hmac"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("suppression_entries", schema=None) as batch_op:
        batch_op.drop_index("suppression_entries_hash")
    op.drop_table("suppression_entries")
    op.drop_table("suppression_lists")
    op.drop_table("source_counters")
    with op.batch_alter_table("reservations", schema=None) as batch_op:
        for name in ("buyer_month_key", "buyer_week_key", "buyer_day_key"):
            batch_op.drop_column(name)
    with op.batch_alter_table("report_counters", schema=None) as batch_op:
        batch_op.drop_column("duplicate_pings")
    with op.batch_alter_table("buyer_funds", schema=None) as batch_op:
        for name in (
            "low_balance_alerted",
            "low_balance_cents",
            "month_spent_cents",
            "week_spent_cents",
            "day_spent_cents",
            "spend_month_key",
            "spend_week_key",
            "spend_day_key",
            "spend_monthly_cap_cents",
            "spend_weekly_cap_cents",
            "spend_daily_cap_cents",
        ):
            batch_op.drop_column(name)
    with op.batch_alter_table("contract_usage", schema=None) as batch_op:
        for name in (
            "consecutive_failures",
            "month_spent_cents",
            "week_spent_cents",
            "day_spent_cents",
            "spend_monthly_cap_cents",
            "spend_weekly_cap_cents",
            "spend_daily_cap_cents",
        ):
            batch_op.drop_column(name)
    with op.batch_alter_table("pings", schema=None) as batch_op:
        batch_op.drop_index("pings_dup")
        batch_op.drop_column("dup_key")
        batch_op.drop_column("subs")
        batch_op.drop_column("source")
