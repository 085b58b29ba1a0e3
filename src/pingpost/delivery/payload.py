"""What a buyer receives on delivery (docs/protocol.md, Buyers): the JSON body, or flat form fields;
and what a post's lead yields beside it (consumer hashes, missing consent)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pingpost.db.post_repo import ping_source
from pingpost.domain.consumer import email_sha256, phone_sha256
from pingpost.domain.model import Contract, Vertical


def delivery_payload(
    *, ping: Any, bid: dict[str, Any], contract: Contract, lead: dict[str, Any], consent: dict[str, Any]
) -> tuple[Any, dict[str, str] | None]:
    """The buyer protocol body (docs/protocol.md, Buyers), or the flat form fields for `format: form`."""
    delivery = contract.delivery or {}
    field_map = delivery.get("field_map") or {}
    mapped = {field_map.get(k, k): v for k, v in lead.items()}
    static = delivery.get("static_fields") or {}
    if delivery.get("format") == "form":
        form = {k: _form_value(v) for k, v in {**mapped, **static}.items()}
        form.update(
            ping_id=ping["id"],
            sale_type=bid["sale_type"],
            price_cents=str(bid["price_cents"]),
            bid_ref=bid.get("bid_ref") or "",
            channel=ping["channel"],
            test=_form_value(bool(ping["test"])),
        )
        form.update({f"consent_{k}": _form_value(v) for k, v in consent.items() if v is not None})
        source, subs = ping_source(ping)
        if source is not None:
            form["source"] = source
        form.update(subs)
        return None, form
    body = {
        "ping_id": ping["id"],
        "sale_type": bid["sale_type"],
        "price_cents": bid["price_cents"],
        "bid_ref": bid.get("bid_ref"),
        "channel": ping["channel"],
        "lead": mapped,
        "consent": consent,
        "test": bool(ping["test"]),
        **static,
    }
    source, subs = ping_source(ping)
    if source is not None:
        body["source"] = source
    if subs:
        body["subs"] = subs
    return body, None


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def consumer_hashes(vertical: Vertical, lead: dict[str, Any]) -> dict[str, str]:
    """Plain SHA-256 hashes computed from the full lead's first phone and email fields."""
    out: dict[str, str] = {}
    for spec in vertical.fields.values():
        value = lead.get(spec.name)
        if not isinstance(value, str):
            continue
        if spec.type == "phone" and "phone_sha256" not in out and (digest := phone_sha256(value)):
            out["phone_sha256"] = digest
        elif spec.type == "email" and "email_sha256" not in out:
            out["email_sha256"] = email_sha256(value)
    return out


def missing_consent(required: Sequence[str], consent: dict[str, Any]) -> list[str]:
    return [name for name in required if consent.get(name) in (None, "", False)]
