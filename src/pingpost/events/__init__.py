"""Section 16 (docs/events.md): the event outbox's views, webhooks and their sender, partner
postbacks, buyer conversions and the audit log's view."""
