"""The whole exchange's schema, defined once (SQLAlchemy Core) and migrated by Alembic.
Over 450 lines: one schema in one file, so every table and index reads side by side with the others.

Conventions that keep one SQL text valid on SQLite and PostgreSQL:
- times are epoch milliseconds (BIGINT); money is BIGINT cents;
- flags are INTEGER 0/1; structured configuration is a JSON document in a TEXT column;
- ids are readable slugs or time-ordered prefixed ids (TEXT).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()


def _stamps() -> list[Column[int]]:
    return [Column("created_at", BigInteger, nullable=False), Column("updated_at", BigInteger, nullable=False)]


# --- configuration (admin API) ---------------------------------------------------------------

verticals = Table(
    "verticals",
    metadata,
    Column("id", Text, primary_key=True),
    Column("body", Text, nullable=False),
    *_stamps(),
)

offers = Table(
    "offers",
    metadata,
    Column("id", Text, primary_key=True),
    Column("vertical_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("body", Text, nullable=False),
    *_stamps(),
)

partners = Table(
    "partners",
    metadata,
    Column("id", Text, primary_key=True),
    Column("status", Text, nullable=False),
    Column("body", Text, nullable=False),
    *_stamps(),
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", Text, primary_key=True),
    Column("partner_id", Text, nullable=False),
    Column("offer_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("posting_key_sha256", Text, nullable=False, unique=True),
    Column("body", Text, nullable=False),
    *_stamps(),
)

buyers = Table(
    "buyers",
    metadata,
    Column("id", Text, primary_key=True),
    Column("status", Text, nullable=False),
    Column("body", Text, nullable=False),
    *_stamps(),
)

contracts = Table(
    "contracts",
    metadata,
    Column("id", Text, primary_key=True),
    Column("buyer_id", Text, nullable=False),
    Column("offer_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("body", Text, nullable=False),  # includes auth secrets: never returned by the API
    *_stamps(),
    Index("contracts_offer", "offer_id"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Text, primary_key=True),
    Column("kind", Text, nullable=False),  # admin | call_platform | buyer
    Column("buyer_id", Text),
    Column("name", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("key_sha256", Text, nullable=False, unique=True),
    *_stamps(),
)

# Bumped in the same transaction as every configuration write: processes refresh their
# in-memory snapshot of offers and contracts when it moves.
config_version = Table(
    "config_version",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", BigInteger, nullable=False),
)

meta = Table(
    "meta",
    metadata,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
)

# --- caps, funds and reservations (docs/crash-safety.md) --------------------------------------

contract_usage = Table(
    "contract_usage",
    metadata,
    Column("contract_id", Text, primary_key=True),
    Column("daily_cap", Integer),
    Column("weekly_cap", Integer),
    Column("monthly_cap", Integer),
    Column("max_live_calls", Integer),
    Column("live_calls", Integer, nullable=False, server_default=text("0")),
    Column("day_key", Text, nullable=False, server_default=text("''")),
    Column("day_used", Integer, nullable=False, server_default=text("0")),
    Column("week_key", Text, nullable=False, server_default=text("''")),
    Column("week_used", Integer, nullable=False, server_default=text("0")),
    Column("month_key", Text, nullable=False, server_default=text("''")),
    Column("month_used", Integer, nullable=False, server_default=text("0")),
    # Spend caps (docs/protocol.md, Traffic controls): in the same periods as the count caps.
    Column("spend_daily_cap_cents", BigInteger),
    Column("spend_weekly_cap_cents", BigInteger),
    Column("spend_monthly_cap_cents", BigInteger),
    Column("day_spent_cents", BigInteger, nullable=False, server_default=text("0")),
    Column("week_spent_cents", BigInteger, nullable=False, server_default=text("0")),
    Column("month_spent_cents", BigInteger, nullable=False, server_default=text("0")),
    # Consecutive RTB or delivery failures, for `auto_pause`.
    Column("consecutive_failures", Integer, nullable=False, server_default=text("0")),
)

buyer_funds = Table(
    "buyer_funds",
    metadata,
    Column("buyer_id", Text, primary_key=True),
    # Cache of the ledger sum for buyer:{id}, written in the same transaction as its entries.
    Column("balance_cents", BigInteger, nullable=False, server_default=text("0")),
    Column("credit_limit_cents", BigInteger, nullable=False, server_default=text("0")),
    Column("holds_cents", BigInteger, nullable=False, server_default=text("0")),
    # Spend caps in the buyer's own time zone, with their own period keys.
    Column("spend_daily_cap_cents", BigInteger),
    Column("spend_weekly_cap_cents", BigInteger),
    Column("spend_monthly_cap_cents", BigInteger),
    Column("spend_day_key", Text, nullable=False, server_default=text("''")),
    Column("spend_week_key", Text, nullable=False, server_default=text("''")),
    Column("spend_month_key", Text, nullable=False, server_default=text("''")),
    Column("day_spent_cents", BigInteger, nullable=False, server_default=text("0")),
    Column("week_spent_cents", BigInteger, nullable=False, server_default=text("0")),
    Column("month_spent_cents", BigInteger, nullable=False, server_default=text("0")),
    Column("low_balance_cents", BigInteger),
    Column("low_balance_alerted", Integer, nullable=False, server_default=text("0")),  # 1 while below
)

reservations = Table(
    "reservations",
    metadata,
    Column("id", Text, primary_key=True),
    Column("bid_id", Text, nullable=False, unique=True),
    Column("ping_id", Text, nullable=False),
    Column("contract_id", Text, nullable=False),
    Column("buyer_id", Text, nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("day_key", Text),
    Column("week_key", Text),
    Column("month_key", Text),
    Column("live_call", Integer, nullable=False, server_default=text("0")),
    Column("state", Text, nullable=False),  # held | posting | sold | released | expired
    # the buyer's spend periods (its time zone) the hold counts in
    Column("buyer_day_key", Text),
    Column("buyer_week_key", Text),
    Column("buyer_month_key", Text),
    Column("expires_at", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index(
        "reservations_live",
        "expires_at",
        sqlite_where=text("state IN ('held','posting')"),
        postgresql_where=text("state IN ('held','posting')"),
    ),
    Index("reservations_ping", "ping_id"),
)

rr_pointer = Table(
    "rr_pointer",
    metadata,
    Column("offer_id", Text, primary_key=True),
    Column("last_key", Text, nullable=False, server_default=text("''")),
)

# --- pings, posts, deliveries, sales ---------------------------------------------------------

pings = Table(
    "pings",
    metadata,
    Column("id", Text, primary_key=True),
    Column("offer_id", Text, nullable=False),
    Column("campaign_id", Text, nullable=False),
    Column("partner_id", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("mode", Text, nullable=False),  # ping_post | direct_post
    Column("status", Text, nullable=False),  # bids | no_bids | sold | unsold | ...
    Column("post_state", Text, nullable=False),  # open | posting | posted | expired
    Column("test", Integer, nullable=False),
    Column("partner_lead_id", Text),
    Column("received_at", BigInteger, nullable=False),
    Column("decided_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("lead", Text, nullable=False),  # non-PII fields only
    Column("consumer", Text, nullable=False),  # keyed (HMAC) consumer hashes only
    Column("bids", Text, nullable=False),  # winning and standby bids, JSON
    Column("waterfall", Text, nullable=False),  # one JSON document a ping (docs/performance.md)
    Column("source", Text),  # the partner's sub-ID
    Column("subs", Text),  # {"sub1".."sub5"} JSON
    Column("dup_key", Text),  # duplicate-ping key (keyed hash), only with a campaign window
    Index("pings_campaign", "campaign_id", "id"),
    Index("pings_offer", "offer_id", "id"),
    Index(
        "pings_dup",
        "dup_key",
        "received_at",
        sqlite_where=text("dup_key IS NOT NULL"),
        postgresql_where=text("dup_key IS NOT NULL"),
    ),
)

ping_events = Table(
    "ping_events",
    metadata,
    Column("id", Text, primary_key=True),
    Column("ping_id", Text, nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("type", Text, nullable=False),
    Column("bid_id", Text),
    Column("detail", Text),
    Index("ping_events_ping", "ping_id", "id"),
)

posts = Table(
    "posts",
    metadata,
    Column("id", Text, primary_key=True),
    Column("ping_id", Text, nullable=False, unique=True),
    Column("pii_ciphertext", Text),  # lead + consent, encrypted at rest; NULL once purged
    Column("created_at", BigInteger, nullable=False),
    Column("purged_at", BigInteger),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Text, primary_key=True),
    Column("ping_id", Text, nullable=False),
    Column("bid_id", Text, nullable=False, unique=True),
    Column("contract_id", Text, nullable=False),
    Column("buyer_id", Text, nullable=False),
    Column("state", Text, nullable=False),  # pending | accepted | rejected | voided | recorded
    Column("outcome", Text),
    Column("detail", Text),
    Column("latency_ms", Integer),
    Column("buyer_lead_id", Text),
    Column("created_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger),
    Index("deliveries_pending", "state", "created_at"),
    Index("deliveries_created", "created_at"),  # reports read posts by time
)

sales = Table(
    "sales",
    metadata,
    Column("id", Text, primary_key=True),
    Column("ping_id", Text, nullable=False),
    Column("bid_id", Text, nullable=False, unique=True),
    Column("offer_id", Text, nullable=False),
    Column("campaign_id", Text, nullable=False),
    Column("partner_id", Text, nullable=False),
    Column("contract_id", Text, nullable=False),
    Column("buyer_id", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("sale_type", Text, nullable=False),
    Column("price_cents", BigInteger, nullable=False),
    Column("payout_cents", BigInteger, nullable=False),
    # charged | pending | void | reversed | returned | partially_returned
    Column("status", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("sales_buyer", "buyer_id", "id"),
    Index("sales_created", "created_at"),  # reports and the console read sales by time
    Index("sales_contract_time", "contract_id", "created_at"),  # a month's sales (the return rate limit)
)

dedup_records = Table(
    "dedup_records",
    metadata,
    Column("buyer_id", Text, nullable=False),
    Column("hash_hmac", Text, nullable=False),
    Column("sold_at", BigInteger, nullable=False),
    Column("sale_id", Text, nullable=False),
    PrimaryKeyConstraint("buyer_id", "hash_hmac", "sale_id"),
)

# --- money -----------------------------------------------------------------------------------

ledger_transactions = Table(
    "ledger_transactions",
    metadata,
    Column("id", Text, primary_key=True),
    Column("kind", Text, nullable=False),  # deposit | sale | reversal | return | payout
    Column("reference", Text),
    Column("sale_id", Text),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("kind", "reference", name="ledger_transactions_reference"),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", Text, primary_key=True),
    Column("transaction_id", Text, nullable=False),
    Column("account", Text, nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ledger_entries_account", "account", "id"),
    Index("ledger_entries_transaction", "transaction_id"),
    Index("ledger_entries_account_time", "account", "created_at"),  # statements
)

# --- returns and events (docs/protocol.md, Returns) ----------------------------------------

returns = Table(
    "returns",
    metadata,
    Column("id", Text, primary_key=True),
    Column("sale_id", Text, nullable=False),
    Column("offer_id", Text, nullable=False),
    Column("campaign_id", Text, nullable=False),
    Column("partner_id", Text, nullable=False),
    Column("contract_id", Text, nullable=False),
    Column("buyer_id", Text, nullable=False),
    Column("status", Text, nullable=False),  # pending | approved | denied
    Column("reason", Text, nullable=False),
    Column("note", Text),
    Column("amount_cents", BigInteger, nullable=False),
    Column("clawback_cents", BigInteger),  # the partner's share, set on approval
    Column("sale_month", Text, nullable=False),  # the sale's calendar month in the contract's time zone
    Column("opened_by", Text, nullable=False),  # buyer | admin
    Column("transaction_id", Text),  # the `return` ledger transaction, on approval
    Column("decision_note", Text),
    Column("created_at", BigInteger, nullable=False),
    Column("decided_at", BigInteger),
    # One pending or approved return per sale, whatever races.
    Index(
        "returns_open_per_sale",
        "sale_id",
        unique=True,
        sqlite_where=text("status IN ('pending','approved')"),
        postgresql_where=text("status IN ('pending','approved')"),
    ),
    Index("returns_sale", "sale_id"),
    Index("returns_contract_month", "contract_id", "sale_month"),
    Index("returns_buyer", "buyer_id", "id"),
    Index("returns_partner", "partner_id", "id"),
    Index("returns_status", "status", "id"),
)

# The transactional outbox: every event is written in the same transaction as its change
# (db/events_repo.py); `data` is JSON of ids, amounts and codes, never PII.
events = Table(
    "events",
    metadata,
    Column("id", Text, primary_key=True),
    Column("type", Text, nullable=False),
    Column("data", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("events_type", "type", "id"),
)

# --- idempotency and call events (docs/crash-safety.md) --------------------------------

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("campaign_id", Text, nullable=False),
    Column("endpoint", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("request_sha256", Text, nullable=False),
    Column("state", Text, nullable=False),  # in_flight | done
    Column("locked_until", BigInteger, nullable=False),
    Column("status", Integer),
    Column("body", Text),
    Column("created_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("campaign_id", "endpoint", "key"),
)

call_events = Table(
    "call_events",
    metadata,
    Column("ping_id", Text, nullable=False),
    Column("bid_id", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("request_sha256", Text, nullable=False),
    Column("answer", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("ping_id", "bid_id", "type"),
)

# Aggregate counters for reports, one row per (day, contract, campaign): no waterfall scans.
# Rows with contract_id '' count the campaign's pings; contract rows count evaluations, bids, wins.
report_counters = Table(
    "report_counters",
    metadata,
    Column("day", Text, nullable=False),
    Column("offer_id", Text, nullable=False),
    Column("campaign_id", Text, nullable=False),
    Column("partner_id", Text, nullable=False),
    Column("contract_id", Text, nullable=False),
    Column("buyer_id", Text, nullable=False),
    Column("bids", BigInteger, nullable=False, server_default=text("0")),
    Column("wins", BigInteger, nullable=False, server_default=text("0")),
    Column("pings", BigInteger, nullable=False, server_default=text("0")),
    Column("duplicate_pings", BigInteger, nullable=False, server_default=text("0")),
    PrimaryKeyConstraint("day", "contract_id", "campaign_id"),
)

# The same per (day, campaign, source) for `group_by=source` (source '' = pings without one).
source_counters = Table(
    "source_counters",
    metadata,
    Column("day", Text, nullable=False),
    Column("offer_id", Text, nullable=False),
    Column("campaign_id", Text, nullable=False),
    Column("partner_id", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("pings", BigInteger, nullable=False, server_default=text("0")),
    Column("bids", BigInteger, nullable=False, server_default=text("0")),
    Column("wins", BigInteger, nullable=False, server_default=text("0")),
    Column("duplicate_pings", BigInteger, nullable=False, server_default=text("0")),
    PrimaryKeyConstraint("day", "campaign_id", "source"),
)

# Per-campaign ping rate windows (one-second fixed windows), shared by every process.
rate_windows = Table(
    "rate_windows",
    metadata,
    Column("campaign_id", Text, primary_key=True),
    Column("window_start", BigInteger, nullable=False),
    Column("pings", BigInteger, nullable=False),
)

# --- the operator console (docs/console.md) ------------------------------------------------------

# Server-side console sessions: only the SHA-256 of the session id is stored, beside the key that
# signed in (id and hash: a revoked or replaced key ends its sessions).
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id_sha256", Text, primary_key=True),
    Column("key_id", Text, nullable=False),
    Column("key_sha256", Text, nullable=False),
    Column("kind", Text, nullable=False),  # admin | buyer
    Column("buyer_id", Text),
    Column("csrf_token", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("last_seen_at", BigInteger, nullable=False),
    Index("console_sessions_seen", "last_seen_at"),
)

# Sales totals of closed UTC days, computed once from the sales table for the console's charts and
# forgotten when a sale of that day is reversed.
console_day_totals = Table(
    "console_day_totals",
    metadata,
    Column("day", Text, primary_key=True),
    Column("sales", BigInteger, nullable=False),
    Column("reversed", BigInteger, nullable=False),
    Column("revenue_cents", BigInteger, nullable=False),
    Column("payout_cents", BigInteger, nullable=False),
    Column("computed_at", BigInteger, nullable=False),
)

# --- traffic controls (docs/protocol.md) ----------------------------------------------------------

# Suppression lists hold only keyed hashes (HMAC-SHA-256 of the consumer hash, as dedup does).
suppression_lists = Table(
    "suppression_lists",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("scope", Text, nullable=False),  # global | buyer
    Column("buyer_id", Text),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

suppression_entries = Table(
    "suppression_entries",
    metadata,
    Column("list_id", Text, nullable=False),
    Column("hash_hmac", Text, nullable=False),
    Column("kind", Text, nullable=False),  # phone | email
    PrimaryKeyConstraint("list_id", "hash_hmac"),
    Index("suppression_entries_hash", "hash_hmac"),
)
