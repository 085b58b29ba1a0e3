"""Waterfall outcome codes (docs/protocol.md, Waterfall outcomes), in the order eligibility is checked."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    CONTRACT_PAUSED = "contract_paused"
    BUYER_PAUSED = "buyer_paused"
    CHANNEL_MISMATCH = "channel_mismatch"
    OUTSIDE_SCHEDULE = "outside_schedule"
    FILTER_MISMATCH = "filter_mismatch"
    MISSING_REQUIRED_FIELDS = "missing_required_fields"
    DUPLICATE = "duplicate"
    SUPPRESSED = "suppressed"
    CAP_REACHED = "cap_reached"
    CONCURRENCY_CAP_REACHED = "concurrency_cap_reached"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    NO_BID = "no_bid"
    BID_TIMEOUT = "bid_timeout"
    BID_ERROR = "bid_error"
    BID_INVALID = "bid_invalid"
    BELOW_MIN_BID = "below_min_bid"
    BELOW_FLOOR = "below_floor"
    NEGATIVE_MARGIN = "negative_margin"
    BELOW_MIN_MARGIN = "below_min_margin"
    BELOW_PARTNER_MINIMUM = "below_partner_minimum"
    MISSING_TRANSFER = "missing_transfer"
    WON = "won"
    STANDBY = "standby"
    LOST_TO_HIGHER_BID = "lost_to_higher_bid"
    NOT_SELECTED = "not_selected"


class PostOutcome(StrEnum):
    POST_ACCEPTED = "post_accepted"
    POST_REJECTED = "post_rejected"
    POST_TIMEOUT = "post_timeout"
    POST_ERROR = "post_error"
    POST_UNKNOWN = "post_unknown"
    NOT_POSTED = "not_posted"
    FILTER_MISMATCH = "filter_mismatch"
    DUPLICATE = "duplicate"
    CONSENT_MISSING = "consent_missing"
    SUPPRESSED = "suppressed"
    VERIFICATION_FAILED = "verification_failed"  # a `require` check refused the post (docs/verification.md)
    CALL_CONNECTED = "call_connected"
    CALL_BILLABLE = "call_billable"
    CALL_VOID = "call_void"
    CALL_FAILED = "call_failed"
