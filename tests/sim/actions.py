"""The actions the scheduler interleaves, each through an instance's HTTP API (docs/simulator.md):
here the partners' pings, posts and direct posts and every retry; the call platform's events are in
`platform_actions.py`, the operator's changes and the clock's moves in `operator_actions.py`. Every
parameter is drawn from the scheduler's random when the action is chosen, so a seed picks the same
actions.
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pingpost.domain.consumer import email_sha256, phone_sha256
from tests.sim.model import CallRec, PingRec, Resend
from tests.sim.scenario import CALL_OFFER, DIRECT_OFFER, FORM_OFFERS, SOURCES, STATES, Consumer
from tests.sim.world import Instance

if TYPE_CHECKING:
    from tests.sim.simulation import Simulation

Run = Callable[[Instance], Awaitable[str]]
MINUTE = 60_000
HOUR = 60 * MINUTE
IDEMPOTENCY_MS = 24 * HOUR  # an Idempotency-Key's answer stands this long


@dataclass
class Action:
    label: str
    run: Run
    solo: bool = False  # runs alone in its step (operator changes, big clock moves)
    on_crash: Callable[[], None] = field(default=lambda: None)


def code(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("code"))
    return ""


def draw_lead(sim: Simulation) -> dict[str, Any]:
    rng = sim.rng
    lead: dict[str, Any] = {
        "state": rng.choice(STATES),
        "zip": f"{rng.randint(10000, 99999)}",
        "age": rng.randint(58, 80),
    }
    if rng.random() < 0.6:
        lead["coverage"] = rng.choice(["none", "original", "advantage"])
    if rng.random() < 0.3:
        lead["smoker"] = rng.random() < 0.5
    return lead


def consumer_hashes(sim: Simulation, consumer: Consumer) -> dict[str, str]:
    roll = sim.rng.random()
    hashes = {"phone_sha256": phone_sha256(consumer.phone) or "", "email_sha256": email_sha256(consumer.email)}
    if roll < 0.15:
        del hashes["email_sha256"]
    elif roll < 0.25:
        del hashes["phone_sha256"]
    return hashes


def idempotency_key(sim: Simulation, rate: float) -> str | None:
    return sim.model.next("idem-") if sim.rng.random() < rate else None


# --- partner: pings --------------------------------------------------------------------------


def ping(
    sim: Simulation, *, channel: str | None = None, consumer: Consumer | None = None, campaign: str | None = None
) -> Action:
    rng, sc, model = sim.rng, sim.scenario, sim.model
    channel = channel or rng.choices(["form", "call", "callback"], [7, 2, 1])[0]
    offer = rng.choice(FORM_OFFERS) if channel == "form" else CALL_OFFER
    if campaign is not None:
        offer = next(c["offer"] for c in sc.campaigns if c["id"] == campaign)
    campaign = campaign or rng.choice(sc.campaigns_for(offer))["id"]
    consumer = consumer or rng.choice(sc.consumers)
    lead = draw_lead(sim)
    body: dict[str, Any] = {"lead": lead}
    if channel != "form" or rng.random() < 0.5:
        body["channel"] = channel
    if rng.random() < 0.85:
        body["consumer"] = consumer_hashes(sim, consumer)
    # a source from the lead itself (no draw from `rng`: the seed's sequence of steps stays the same)
    source = (None, *SOURCES)[zlib.crc32(repr(sorted(lead.items())).encode()) % (len(SOURCES) + 1)]
    if source is not None:
        body["source"], body["subs"] = source, {"sub1": "sim"}
    test = rng.random() < 0.04
    if test:
        body["test"] = True
    key = idempotency_key(sim, 0.3)
    token = model.posting_keys[campaign]
    ttl = sc.ttl_ms(offer, channel)

    async def run(inst: Instance) -> str:
        sent = sim.clock.now_ms()
        r = await sim.send(inst, "POST", "/v1/ping", token=token, body=body, key=key)
        end = sim.clock.now_ms()
        if key is not None:
            model.resends.append(Resend("ping", "/v1/ping", token, body, key, r.status_code, r.json(), sent))
        sim.expect("ping", r, {200, 403, 429})
        if r.status_code != 200:
            return f"{r.status_code} {code(r.json())}"
        answer = r.json()
        if answer.get("duplicate_of"):  # the earlier ping's answer: no auction, nothing new to post
            return f"duplicate of {answer['duplicate_of']} {answer['status']}"
        await sim.check_ping_answer(answer, test=test)
        if answer["bids"]:
            rec = PingRec(
                answer["ping_id"],
                offer,
                campaign,
                channel,
                lead,
                consumer,
                answer["bids"],
                test,
                expiry_bound_ms=end + ttl,
                source=source,
            )
            model.pings[rec.ping_id] = rec
            if channel != "form":
                model.calls.append(CallRec(rec, active=answer["bids"][0]["bid_id"]))
        return f"{answer['status']} {answer['ping_id']} payouts={[b['payout_cents'] for b in answer['bids']]}"

    def crashed() -> None:
        if key is not None:
            model.resends.append(
                Resend("ping", "/v1/ping", token, body, key, first_at_ms=sim.clock.now_ms(), unanswered=True)
            )

    return Action(f"ping {channel} {campaign} {consumer.first_name}{' test' if test else ''}", run, on_crash=crashed)


# --- partner: posts --------------------------------------------------------------------------


def burst(sim: Simulation) -> list[Action]:
    """A partner's burst: several pings of one campaign at once (over a rate limit, if it has one)."""
    campaigns = sorted(sim.scenario.rate_limited) or [c["id"] for c in sim.scenario.campaigns]
    campaign = sim.rng.choice(campaigns)
    offer = next(c["offer"] for c in sim.scenario.campaigns if c["id"] == campaign)
    if offer == DIRECT_OFFER:
        return [direct_post(sim, campaign=campaign) for _ in range(sim.rng.randint(2, 4))]
    channel = "form" if offer != CALL_OFFER else sim.rng.choice(["call", "callback"])
    return [ping(sim, channel=channel, campaign=campaign) for _ in range(sim.rng.randint(3, 4))]


def post_twice(sim: Simulation, rec: PingRec) -> list[Action]:
    """A partner's double submit: the same post twice at once (on any instances)."""
    action = post(sim, rec, twice=True)
    return [action, Action(action.label + " again", action.run, on_crash=action.on_crash)]


def post(sim: Simulation, rec: PingRec, *, twice: bool = False) -> Action:
    rng, model = sim.rng, sim.model
    rec.posted = True
    bid_ids = [b["bid_id"] for b in rec.bids]
    chosen = None if rng.random() < 0.7 else set(rng.sample(bid_ids, k=rng.randint(1, len(bid_ids))))
    rec.chosen = chosen
    lead = {**rec.lead, **rec.consumer.pii()}
    if "coverage" not in lead and rng.random() < 0.3:
        lead["coverage"] = rng.choice(["none", "original", "advantage"])
    body: dict[str, Any] = {"ping_id": rec.ping_id, "lead": lead}
    if rec.source is not None:
        body["source"] = rec.source
    if chosen is not None:
        body["bid_ids"] = sorted(chosen)
    if rng.random() < 0.9:
        body["consent"] = {"tcpa": True}
    key = idempotency_key(sim, 0.3)
    token = model.posting_keys[rec.campaign]

    async def run(inst: Instance) -> str:
        started = sim.clock.now_ms()
        r = await sim.send(inst, "POST", "/v1/post", token=token, body=body, key=key)
        if key is not None:
            model.resends.append(Resend("post", "/v1/post", token, body, key, r.status_code, r.json(), started))
        sim.expect("post", r, {200, 403, 409, 410} if twice else {200, 403, 410})
        delivered = sim.buyers.deliveries_for(rec.ping_id)
        if started >= rec.expiry_bound_ms and delivered:
            sim.violation(
                "posts_claim_only_live_reservations",
                f"post of {rec.ping_id} at {started} (its bids lapsed by {rec.expiry_bound_ms} on the "
                f"one clock) answered {r.status_code} and delivered to {[d.contract for d in delivered]}",
            )
        if r.status_code == 403 and key is None:
            rec.posted = False  # paused: the partner may post again later (with a key, its resend does)
        if r.status_code != 200:
            return f"{r.status_code} {code(r.json())}"
        answer = r.json()
        model.sale_ids += [s["sale_id"] for s in answer["sales"] if s["sale_id"]]
        if any(x["reason"] == "verification_failed" for x in answer["rejected"]) and (
            answer["sales"] or sim.buyers.deliveries_for(rec.ping_id)
        ):
            sim.violation("refused_posts_deliver_nothing", f"post of {rec.ping_id} was refused yet delivered")
        return f"{answer['status']} sales={len(answer['sales'])} rejected={[x['reason'] for x in answer['rejected']]}"

    def crashed() -> None:
        if key is not None:
            model.resends.append(
                Resend("post", "/v1/post", token, body, key, first_at_ms=sim.clock.now_ms(), unanswered=True)
            )

    late = sim.clock.now_ms() >= rec.expiry_bound_ms
    return Action(
        f"post {rec.ping_id}{' (late)' if late else ''} bids={len(chosen) if chosen else 'all'}", run, on_crash=crashed
    )


def late_post(sim: Simulation, rec: PingRec) -> Action:
    """Move the clock to just after the ping's bids lapsed, then post: within the hosts' clock skew
    an instance may still think they are live."""
    target = rec.expiry_bound_ms + sim.rng.randint(0, 6000)
    action = post(sim, rec)
    posting = action.run

    async def run(inst: Instance) -> str:
        if target > sim.clock.now_ms():
            sim.clock.set(target)
        return await posting(inst)

    return Action(f"{action.label} late, at {target}", run, solo=True, on_crash=action.on_crash)


def direct_post(
    sim: Simulation,
    *,
    consumer: Consumer | None = None,
    lead: dict[str, Any] | None = None,
    campaign: str | None = None,
) -> Action:
    rng, sc, model = sim.rng, sim.scenario, sim.model
    campaign = campaign or rng.choice(sc.campaigns_for(DIRECT_OFFER))["id"]
    consumer = consumer or rng.choice(sc.consumers)
    body: dict[str, Any] = {"lead": {**(lead or draw_lead(sim)), **consumer.pii()}, "consent": {"tcpa": True}}
    key = idempotency_key(sim, 0.2)
    token = model.posting_keys[campaign]

    async def run(inst: Instance) -> str:
        sent = sim.clock.now_ms()
        r = await sim.send(inst, "POST", "/v1/direct-post", token=token, body=body, key=key)
        if key is not None:
            model.resends.append(Resend("direct", "/v1/direct-post", token, body, key, r.status_code, r.json(), sent))
        sim.expect("direct post", r, {200, 403})
        if r.status_code != 200:
            return f"{r.status_code} {code(r.json())}"
        answer = r.json()
        model.sale_ids += [s["sale_id"] for s in answer["sales"] if s["sale_id"]]
        return f"{answer['status']} {answer['ping_id']} sales={len(answer['sales'])}"

    def crashed() -> None:
        if key is not None:
            model.resends.append(
                Resend("direct", "/v1/direct-post", token, body, key, first_at_ms=sim.clock.now_ms(), unanswered=True)
            )

    return Action(f"direct-post {campaign} {consumer.first_name}", run, on_crash=crashed)


def direct_post_pair(sim: Simulation) -> list[Action]:
    """The same consumer direct-posted twice at once (a partner's double submit)."""
    consumer = sim.rng.choice(sim.scenario.consumers)
    lead = draw_lead(sim)
    return [direct_post(sim, consumer=consumer, lead=lead), direct_post(sim, consumer=consumer, lead=lead)]


# --- retries ---------------------------------------------------------------------------------


def resend(sim: Simulation, item: Resend | None = None) -> Action | None:
    """Send an earlier request again (`item`, or one drawn): after a crash (the platform's or partner's
    retry), or a partner repeating a request under its Idempotency-Key (its answer stands 24 hours)."""
    model, rng = sim.model, sim.rng
    if not model.resends:
        return None
    if item is None:
        crashed = [r for r in model.resends if r.unanswered]
        refused = [r for r in model.resends if r.first_status is not None and r.first_status >= 300]
        pool = (
            crashed if crashed and rng.random() < 0.7 else refused if refused and rng.random() < 0.5 else model.resends
        )
        item = pool[rng.randrange(len(pool))]
    model.resends.remove(item)
    chosen = item

    async def run(inst: Instance) -> str:
        fresh = chosen.key is None or sim.clock.now_ms() - chosen.first_at_ms < IDEMPOTENCY_MS - 10_000
        r = await sim.send(inst, "POST", chosen.path, token=chosen.token, body=chosen.body, key=chosen.key)
        answer = r.json()
        replayed = r.headers.get("idempotent-replayed") == "true"
        final = (
            r.status_code < 300
            or r.status_code in (400, 404, 410, 413, 422)
            or (r.status_code == 409 and code(answer) not in ("idempotency_in_flight", "event_conflict"))
        )
        if replayed and not final:
            sim.violation(
                "idempotency_records_only_final_answers",
                f"{chosen.label} retry with key {chosen.key} replayed {r.status_code} {code(answer)}",
            )
        if chosen.key is None and r.status_code == 409 and code(answer) == "event_conflict":
            first = "crashed" if chosen.first_status is None else f"answered {chosen.first_status}"
            sim.violation(
                "call_events_survive_crashes",
                f"{chosen.label} sent again with the same payload answered 409 event_conflict "
                f"(the first attempt {first})",
            )
        if fresh and chosen.first_status == 200 and r.status_code == 200 and answer != chosen.first_body:
            sim.violation(
                "retries_answer_the_same", f"{chosen.label} retry answered {answer}, first answer {chosen.first_body}"
            )
        if r.status_code == 409 and code(answer) == "idempotency_in_flight":
            model.resends.append(chosen)  # the crashed owner's lease has not lapsed yet
        if chosen.unanswered and r.status_code >= 500:
            sim.expect(chosen.label, r, set())
            model.resends.append(chosen)
            return f"{r.status_code} again"
        if chosen.unanswered and chosen.on_answer is not None:
            return chosen.on_answer(r.status_code, answer)
        if chosen.unanswered:
            sim.expect(chosen.label, r, {200, 403, 409, 410, 429})
        return f"{r.status_code} {code(answer)}{' (replayed)' if replayed else ''}"

    return Action(
        f"resend {chosen.label} {chosen.path}{' unanswered' if chosen.unanswered else ''}"
        f"{' key=' + chosen.key if chosen.key else ''}",
        run,
    )
