"""Tables of section 16 (docs/events.md): webhooks, their deliveries (postbacks too), the sender's
lease, buyer conversions and the audit log. Defined on the one `tables.metadata`."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, Table, Text, UniqueConstraint, text

from pingpost.db.tables import events, metadata

# The events the sender has not yet made deliveries for: a small, partial index.
Index(
    "events_undispatched",
    events.c.id,
    sqlite_where=text("dispatched_at IS NULL"),
    postgresql_where=text("dispatched_at IS NULL"),
)

webhooks = Table(
    "webhooks",
    metadata,
    Column("id", Text, primary_key=True),
    Column("url", Text, nullable=False),
    Column("events", Text, nullable=False),  # JSON list of event types, or ["*"]
    Column("secret", Text, nullable=False),  # stored like buyers' auth secrets; never shown after creation
    Column("description", Text),
    Column("status", Text, nullable=False),  # active | paused
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# One row per (target, event): a webhook's POST or a campaign's postback GET. `claim_token` is the
# fencing token of the sender that took the current attempt; `next_attempt_at` is pushed past the
# attempt's deadline when it is taken, so a crashed sender's attempt comes due again.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Text, primary_key=True),
    Column("event_id", Text, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("target", Text, nullable=False),  # webhook | postback
    Column("webhook_id", Text),
    Column("campaign_id", Text),
    Column("url", Text),  # a postback's filled template
    Column("status", Text, nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_status", Integer),
    Column("last_error", Text),
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("claim_token", BigInteger),
    Column("created_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger),
    Index(
        "webhook_deliveries_due",
        "next_attempt_at",
        sqlite_where=text("status = 'pending'"),
        postgresql_where=text("status = 'pending'"),
    ),
    Index("webhook_deliveries_webhook", "webhook_id", "id"),
    Index("webhook_deliveries_event", "event_id"),
)

# One row per background role (`webhook_sender`): who holds it until when, and a token that grows
# with every new holder (the fencing token every attempt it takes carries).
sender_leases = Table(
    "sender_leases",
    metadata,
    Column("name", Text, primary_key=True),
    Column("holder", Text, nullable=False),
    Column("token", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)

conversions = Table(
    "conversions",
    metadata,
    Column("id", Text, primary_key=True),
    Column("sale_id", Text, nullable=False),
    Column("event", Text, nullable=False),
    Column("buyer_id", Text, nullable=False),
    Column("offer_id", Text, nullable=False),
    Column("campaign_id", Text, nullable=False),
    Column("partner_id", Text, nullable=False),
    Column("contract_id", Text, nullable=False),
    Column("value_cents", BigInteger),
    Column("occurred_at", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("sale_id", "event", name="conversions_sale_event"),
    Index("conversions_time", "created_at"),
)

# Read-only by every endpoint: written in the transaction of the admin change it records.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Text, primary_key=True),
    Column("at", BigInteger, nullable=False),
    Column("actor_key_id", Text),
    Column("actor_kind", Text, nullable=False),
    Column("actor_via", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("object_type", Text, nullable=False),
    Column("object_id", Text, nullable=False),
    Column("before", Text),
    Column("after", Text),
    Index("audit_log_object", "object_type", "object_id", "id"),
    Index("audit_log_actor", "actor_key_id", "id"),
    Index("audit_log_at", "at"),
)
