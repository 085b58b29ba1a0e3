"""How a buyer's answer to a delivery is judged (docs/protocol.md): pure, no I/O.

The HTTP status alone never means accepted: pingpost's own protocol, a JSON path with accepted
values, or a regular expression matched as a whole word decides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from pingpost.domain.outcomes import PostOutcome

MAX_REASON = 200


@dataclass(frozen=True)
class Verdict:
    outcome: PostOutcome
    detail: str | None = None
    buyer_lead_id: str | None = None

    @property
    def accepted(self) -> bool:
        return self.outcome is PostOutcome.POST_ACCEPTED


def dig(document: Any, path: str) -> Any:
    """The value at a dotted path (`a.b.0.c`), or None."""
    node = document
    for part in path.split("."):
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return str(value).replace("\x00", "")[:MAX_REASON]


def judge(*, status: int | None, body: bytes, error: str | None, rule: dict[str, Any] | None) -> Verdict:
    if error == "timeout":
        return Verdict(PostOutcome.POST_TIMEOUT, "timeout")
    if error is not None:
        return Verdict(PostOutcome.POST_ERROR, error)
    if status is None or not 200 <= status < 300:
        return Verdict(PostOutcome.POST_ERROR, f"http_{status}")
    if rule is not None and rule.get("regex"):
        text = body.decode("utf-8", errors="replace")
        matched = re.search(rf"(?<!\w)(?:{rule['regex']})(?!\w)", text) is not None
        return Verdict(PostOutcome.POST_ACCEPTED) if matched else Verdict(PostOutcome.POST_REJECTED, "no_match")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return Verdict(PostOutcome.POST_ERROR, "unparsable")
    if rule is None:
        if not isinstance(document, dict) or document.get("status") not in ("accepted", "rejected"):
            return Verdict(PostOutcome.POST_ERROR, "unparsable")
        lead_id = _text(document.get("buyer_lead_id"))
        if document["status"] == "accepted":
            return Verdict(PostOutcome.POST_ACCEPTED, None, lead_id)
        return Verdict(PostOutcome.POST_REJECTED, _text(document.get("reason")), lead_id)
    value = dig(document, rule["path"])
    lead_id = _text(dig(document, rule["buyer_lead_id_path"])) if rule.get("buyer_lead_id_path") else None
    if value is not None and any(value == ok and type(value) is type(ok) for ok in rule["accepted"]):
        return Verdict(PostOutcome.POST_ACCEPTED, None, lead_id)
    reason = _text(dig(document, rule["reason_path"])) if rule.get("reason_path") else None
    return Verdict(PostOutcome.POST_REJECTED, reason or _text(value), lead_id)
